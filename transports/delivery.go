package transports

import (
	"context"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// DeliveryInfo travels in the context of every message a subscriber hands
// out (see WithDeliveryInfo). The subscriber fills Attempt and Poison; the
// consumer may set RetryAfter before Nack.
type DeliveryInfo struct {
	// Attempt is the durable delivery count: 1 on the first delivery. It
	// survives process restarts.
	Attempt int
	// Topic is the event name the message was read from.
	Topic string
	// Group is the consumer group the message was read for.
	Group string
	// Poison is set when the broker entry could not be decoded into a
	// message; the message then carries whatever raw bytes could be read.
	// The consumer dead-letters it.
	Poison error
	// RetryAfter is set by the consumer before Nack: the delay before the
	// message is delivered again. Zero lets the transport choose.
	RetryAfter time.Duration
	// Outcome is set by the consumer's middleware when it settles the
	// delivery without the handler succeeding (dead-lettered, duplicate
	// skipped); empty otherwise. Observability reads it.
	Outcome Outcome
	// Retries counts the in-process retries of the handler during this
	// delivery (the retry middleware increments it).
	Retries int
}

// Outcome says how the consumer settled one delivery. It is the value of the
// busline.outcome attribute of spans and metrics.
type Outcome string

// The outcomes of a delivery.
const (
	// OutcomeOK: the handler returned nil; the event is acknowledged.
	OutcomeOK Outcome = "ok"
	// OutcomeRetried: the chain failed; the event is redelivered later.
	OutcomeRetried Outcome = "retried"
	// OutcomeDeadLettered: the event went to the dead-letter destination
	// and is acknowledged.
	OutcomeDeadLettered Outcome = "dead_lettered"
	// OutcomeDuplicateSkipped: the event was already handled by the group;
	// it is acknowledged without running the handler.
	OutcomeDuplicateSkipped Outcome = "duplicate_skipped"
)

type deliveryInfoKey struct{}

// IsDeliveryInfoKey reports whether key is the context key of a
// DeliveryInfo. A context type that carries a message's DeliveryInfo
// itself (the delivery engine's message contexts, one allocation per
// message instead of two) answers Value for this key with its
// *DeliveryInfo, and DeliveryInfoFrom finds it as it finds
// WithDeliveryInfo's.
func IsDeliveryInfoKey(key any) bool {
	_, ok := key.(deliveryInfoKey)
	return ok
}

// WithDeliveryInfo returns ctx carrying info.
func WithDeliveryInfo(ctx context.Context, info *DeliveryInfo) context.Context {
	return context.WithValue(ctx, deliveryInfoKey{}, info)
}

// DeliveryInfoFrom returns the info a subscriber attached to ctx, or nil.
func DeliveryInfoFrom(ctx context.Context) *DeliveryInfo {
	info, _ := ctx.Value(deliveryInfoKey{}).(*DeliveryInfo)
	return info
}

// Info returns the DeliveryInfo of msg, creating an empty one (Attempt 1)
// when the subscriber attached none.
func Info(msg *message.Message) *DeliveryInfo {
	if info := DeliveryInfoFrom(msg.Context()); info != nil {
		return info
	}
	info := &DeliveryInfo{Attempt: 1}
	msg.SetContext(WithDeliveryInfo(msg.Context(), info))
	return info
}

// DefaultRetryAfter is the redelivery delay a transport uses when the
// consumer nacks without setting RetryAfter: 1s doubled per attempt, at most 5 minutes.
func DefaultRetryAfter(attempt int) time.Duration {
	d := time.Second
	for i := 1; i < attempt && d < 5*time.Minute; i++ {
		d *= 2
	}
	return min(d, 5*time.Minute)
}
