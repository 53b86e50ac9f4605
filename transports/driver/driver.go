package driver

import (
	"context"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
)

// Driver opens subscriptions on one broker.
type Driver interface {
	// Open joins consumer group cfg.Group on topic as member cfg.Consumer,
	// creating the group at cfg.Since when it does not exist. It returns
	// once the group exists on the broker, so that an event fired
	// afterwards reaches the group. A closed driver returns
	// transports.ErrClosed.
	Open(ctx context.Context, topic string, cfg transports.SubscriberConfig) (Subscription, error)
}

// Subscription is one member of one consumer group reading one topic.
type Subscription interface {
	// Capabilities says how the broker keeps unacknowledged entries.
	Capabilities() Capabilities

	// Receive returns between 1 and max entries never delivered to the
	// group before, oldest first, waiting up to wait for the first one;
	// it returns no entry and a nil error when none came in time. It
	// returns ctx's error promptly once ctx is done, and
	// transports.ErrClosed once Close was called. Any other error is a
	// broken read: the engine backs off, then reads Pending again, since
	// entries the broken read took may be pending for this member.
	Receive(ctx context.Context, max int, wait time.Duration) ([]*Message, error)

	// Pending returns up to max of this member's own unacknowledged
	// entries after cursor ("" is the start), oldest first, and the
	// cursor to continue from ("" once there are no more). Reading them
	// does not count an attempt. A broker without a pending list returns
	// nothing.
	Pending(ctx context.Context, cursor string, max int) (msgs []*Message, next string, err error)

	// Claim makes up to max entries that other members of the group left
	// unacknowledged for at least minIdle this member's, and returns them
	// with the cursor to continue from ("" once the scan is complete).
	// Claiming does not count an attempt. Entries deleted from the broker
	// while pending are acknowledged and skipped, never returned. A broker
	// without a pending list returns nothing.
	Claim(ctx context.Context, minIdle time.Duration, cursor string, max int) (msgs []*Message, next string, err error)

	// KeepAlive tells the broker this member still holds ids, so that no
	// other member claims them (it resets their idle time) and the broker
	// does not deliver them again (it restarts their AckWait). The engine
	// calls it for every entry it holds on a broker with a pending list
	// or an AckWait (Capabilities); other brokers do nothing.
	KeepAlive(ctx context.Context, ids []AckID) error

	// Record durably stores the attempt counts of messages the engine
	// handed out whose Recorded flag was false. A batch names each entry
	// once, so the driver may send it in any order.
	Record(ctx context.Context, attempts []Attempt) error

	// Ack removes the entries from the group: they are never delivered
	// again. Acknowledging an entry that is already gone is not an error.
	Ack(ctx context.Context, ids []AckID) error

	// Nack returns entries to the group for a redelivery after their
	// Delay, with their attempt count set to Nack.Attempts, to this member
	// or, after the group's AckTimeout, to any member.
	Nack(ctx context.Context, nacks []Nack) error

	// Close releases the subscription's connections. Entries neither
	// acked nor nacked stay pending for this member (a broker with a
	// pending list) or go back to the queue (one without).
	Close() error
}

// Capabilities describe how a broker keeps unacknowledged entries.
type Capabilities struct {
	// PendingList: the broker keeps every member's unacknowledged
	// entries in a list that outlives the member (Redis Streams, the
	// memory broker). Pending, Claim and KeepAlive work; the engine holds
	// a nacked entry itself (keeping its claim alive) until its delay
	// ends, hands it out again without a broker read, and calls Nack only
	// for what it still holds when it stops.
	//
	// Without it (AMQP, NATS JetStream), the broker returns
	// unacknowledged deliveries to the queue or the group when the member
	// goes (or after AckWait): Pending and Claim return nothing,
	// and the engine Nacks at once, leaving the delay to the broker.
	PendingList bool

	// AckWait, when not zero, is how long the broker itself lets a
	// delivery go without an acknowledgement or a KeepAlive before it
	// delivers it again to the group, pending list or not (JetStream's
	// AckWait). The engine then calls KeepAlive for every entry it holds
	// at least three times within it, so that a handler that runs longer
	// keeps its delivery. Zero: the broker redelivers nothing by itself
	// (AMQP), or only to a member that claims it (a pending list, whose
	// claims the engine keeps alive every third of AckTimeout).
	AckWait time.Duration

	// SettleInline: Ack, Nack and Record are cheap calls that wait for no
	// network (an in-process broker). The engine makes them in the slot
	// that settles, one message at a time, as soon as the consumer acks
	// or nacks, instead of batching them in its settler goroutine: the
	// broker's and the engine's books of unacknowledged entries stay as
	// small as the messages in flight. A call that fails goes to the
	// settler, which retries it.
	SettleInline bool

	// ConcurrentReceive: Receive may run in several goroutines at once
	// (never at once with Pending or Claim, which the engine runs alone),
	// and a wait of 0 returns at once when no entry is there (an
	// in-process broker). A slot that finds another slot reading then
	// reads for itself instead of waiting for that read: no hand-off
	// between goroutines. Its errors are handled as any broken read.
	ConcurrentReceive bool

	// AckLinger is how long the engine may hold acknowledgements back
	// while other messages are in handlers, to send them as one batch
	// (AMQP multiple acks). Zero sends each batch as soon as the previous
	// one is done.
	AckLinger time.Duration

	// AckWindow is how many deliveries the broker lets the member hold
	// unacknowledged before it stops delivering (an AMQP prefetch); zero
	// when it sets no such limit. With AckLinger, the engine then holds
	// acknowledgements whether or not other messages are in handlers,
	// until half the window waits (the other half keeps deliveries
	// coming) or AckLinger has passed, so that the driver sends what the
	// engine settles at once.
	AckWindow int

	// ReadAhead is how many entries, beyond its free slots, the engine
	// may read and hold queued for the next slot that frees, so that
	// fewer, larger reads keep the slots busy where each read costs a
	// round trip. Zero: reads ask only for free slots. A driver that
	// reports it implements AheadReceiver, and the engine reads new
	// entries with ReceiveAhead.
	ReadAhead int
}

// AheadReceiver is a Subscription that reads ahead of its free slots
// (Capabilities.ReadAhead).
type AheadReceiver interface {
	// ReceiveAhead is Receive for up to free+ahead new entries, free of
	// them for slots that hand them out at once and the rest to wait
	// in the engine's queue. Entries beyond the first free must come
	// back uncounted (Recorded false, Attempts the count before the read:
	// the engine records the attempt when it hands one out), so that a
	// crash before their hand-out counts no attempt (semantics item 6). A
	// driver that cannot leave them uncounted reads only free entries.
	ReceiveAhead(ctx context.Context, free, ahead int, wait time.Duration) ([]*Message, error)
}

// AckID identifies one delivery to the driver that made it. It must be
// comparable (the engine keys maps with it): a stream entry ID, or a
// channel and delivery tag.
type AckID any

// Message is one delivery of a broker entry, with the broker's facts.
type Message struct {
	// AckID identifies the delivery for Ack, Nack, Record and KeepAlive.
	AckID AckID
	// Topic is the event name the entry was fired as, as the broker says
	// (the stream, the routing key). The engine hands out only entries of
	// the topic it subscribed to (docs/transports.md, semantics item 13) and returns the others.
	Topic string
	// Message is the decoded event; its UUID is the event ID. On a poison
	// entry it holds whatever could be read.
	Message *message.Message
	// Poison is set when the entry could not be decoded into a message.
	Poison error
	// Attempts is the number of earlier deliveries of the entry that
	// reached a handler, as the broker recorded them: 0 for a new entry.
	Attempts int
	// Recorded is set when the broker already recorded this delivery as
	// attempt Attempts+1 (a new read counts itself, an AMQP header says
	// it); otherwise the engine calls Record once it handed it out.
	Recorded bool
}

// Attempt is the durable attempt count of one delivery.
type Attempt struct {
	AckID    AckID
	Attempts int
}

// Nack returns one delivery to the group.
type Nack struct {
	AckID AckID
	// Delay is how long the entry waits before it can be delivered again.
	Delay time.Duration
	// Attempts is the attempt count to keep: the attempts that reached a
	// handler, the last one included when it did.
	Attempts int
}
