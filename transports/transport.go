package transports

import (
	"context"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Transport is a broker driver. Publish (from message.Publisher) must return
// only once the broker has durably accepted every message, and an error
// otherwise: a nil error is the promise that the event will be delivered.
// The topic passed to Publish and Subscribe is the event name.
type Transport interface {
	message.Publisher

	// NewSubscriber returns a subscriber that reads as one member of a
	// consumer group. Its Subscribe must return only once the group exists
	// on the broker, so that an event fired after Subscribe returned is
	// delivered to the group. Cancelling the context given to Subscribe
	// stops reading new messages; messages already handed out can still be
	// acknowledged or nacked until the subscriber is closed. Close stops
	// everything and flushes acknowledgements already made; messages neither
	// acked nor nacked stay pending for the consumer.
	NewSubscriber(cfg SubscriberConfig) (message.Subscriber, error)
}

// SubscriberConfig says which consumer group a subscriber joins and how it reads.
type SubscriberConfig struct {
	// Group is the consumer group, "{service}-{listener}". Required.
	Group string
	// Consumer is the member name within the group: the process name. Required.
	Consumer string
	// AckTimeout is how long a message may stay unacknowledged by a consumer
	// that stopped before another member claims it. A subscriber keeps the
	// claim of a message it handed out alive until that message is acked or
	// nacked, so a slow handler is not reclaimed under it.
	AckTimeout time.Duration
	// Concurrency is the number of messages handed out and not yet
	// acked or nacked at any time. 1 keeps order.
	Concurrency int
	// Since says where a group that does not exist yet starts reading.
	Since Since
}

// Validate reports a configuration that a subscriber cannot work with.
func (c SubscriberConfig) Validate() error {
	switch {
	case c.Group == "":
		return ErrInvalidConfig.with("subscriber: empty consumer group")
	case c.Consumer == "":
		return ErrInvalidConfig.with("subscriber: empty consumer name")
	case c.AckTimeout <= 0:
		return ErrInvalidConfig.with("subscriber: AckTimeout must be positive")
	case c.Concurrency <= 0:
		return ErrInvalidConfig.with("subscriber: Concurrency must be positive")
	}
	return nil
}

// Since is the position where a new consumer group starts reading. The zero
// value means "only events fired after the group was created".
type Since struct {
	beginning bool
	at        time.Time
}

// SinceBeginning starts a new group at the oldest retained event.
var SinceBeginning = Since{beginning: true}

// SinceTime starts a new group at the first event fired at or after t.
func SinceTime(t time.Time) Since { return Since{at: t} }

// IsNew reports whether s is the default: only events fired after the group was created.
func (s Since) IsNew() bool { return !s.beginning && s.at.IsZero() }

// IsBeginning reports whether s starts at the oldest retained event.
func (s Since) IsBeginning() bool { return s.beginning }

// Time returns the time s starts at, and false when s is not a time.
func (s Since) Time() (time.Time, bool) { return s.at, !s.at.IsZero() }

func (s Since) String() string {
	switch {
	case s.beginning:
		return "beginning"
	case !s.at.IsZero():
		return s.at.Format(time.RFC3339Nano)
	default:
		return "new"
	}
}

// DeadLetterer is the capability of keeping a dead-letter destination per
// consumer group. DeadLetter stores msg with the reason and the number of
// deliveries; the caller acknowledges the original afterwards.
type DeadLetterer interface {
	DeadLetter(ctx context.Context, group string, msg *message.Message, reason string, attempts int) error
}

// DeadLetter is one event in a group's dead-letter destination.
type DeadLetter struct {
	// ID identifies the dead letter within its destination (not the event ID).
	ID string
	// Group is the consumer group that gave up on the event.
	Group string
	// Reason is why: the last error, "permanent: ...", or a decode error.
	Reason string
	// Attempts is the number of deliveries the event had.
	Attempts int
	// DeadAt is when it was dead-lettered.
	DeadAt time.Time
	// Topic is the event name the message was fired as.
	Topic string
	// Message is the original event: its UUID is the event ID.
	Message *message.Message
}

// DeadLetterStore is the capability of reading and managing dead letters,
// used by bustest and the busline command.
type DeadLetterStore interface {
	DeadLetterer
	// DeadLetters lists up to limit dead letters of group, oldest first (limit <= 0: all).
	DeadLetters(ctx context.Context, group string, limit int) ([]DeadLetter, error)
	// ReplayDeadLetter sends the dead letter with the given ID back to its
	// group as a fresh delivery with the original event ID, and removes it.
	ReplayDeadLetter(ctx context.Context, group, id string) error
	// PurgeDeadLetters removes every dead letter of group and returns how many.
	PurgeDeadLetters(ctx context.Context, group string) (int, error)
}

// ConsumerRemover is the capability of deleting stale consumers of a group.
// A consumer that holds pending messages is never removed.
type ConsumerRemover interface {
	// RemoveIdleConsumers deletes the consumers of group on topic that have
	// been idle longer than idle and hold no pending message, and returns
	// their names.
	RemoveIdleConsumers(ctx context.Context, topic, group string, idle time.Duration) ([]string, error)
}
