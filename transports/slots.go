package transports

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"
)

// SlotSubscriber is implemented by subscribers that can hand messages
// straight to the goroutines that handle them, with no channel and no
// goroutine of their own in between. The bus uses it when the transport's
// subscriber offers it (every built-in transport does); Subscribe stays
// the way for anything that wants a message.Subscriber (a Watermill
// Router, a conformance suite).
type SlotSubscriber interface {
	// SubscribeSlots joins the group on topic as Subscribe does and
	// returns Concurrency slots in place of a channel. Each slot is for
	// one goroutine: the caller runs one per slot. Reading stops once ctx
	// is done or the subscriber closes; messages handed out can be acked
	// or nacked, and settled, until Close.
	SubscribeSlots(ctx context.Context, topic string) ([]Slot, error)
}

// Slot is one of a subscription's Concurrency places for a message in
// flight, run by the caller's goroutine: Next hands out a message, the
// caller acks or nacks it and calls Settle, then Next again. A slot is not
// safe for use by more than one goroutine at a time.
type Slot interface {
	// Next waits for the next message and returns it; nil once reading
	// stopped (the Subscribe context ended or the subscriber closed), and
	// from then on. A message Next returned and Settle did not settle is
	// settled first.
	//
	// admit, when not nil, is asked last, once the message is ready and
	// before it counts as delivered: when it returns false (the caller
	// stopped taking messages) the message goes back to the broker
	// uncounted, as one read and never handed out, and Next returns nil.
	Next(admit func() bool) *message.Message
	// Settle applies the Ack or Nack of the message Next returned (the
	// same guarantees as a message of Subscribe: an acknowledgement
	// reaches the broker, at Close at the latest) and ends its context. A
	// message neither acked nor nacked is left out: it stays pending for
	// this member, and its place in the slots stays taken until Close.
	// Settle after Close does nothing: the message stays pending.
	Settle()
}
