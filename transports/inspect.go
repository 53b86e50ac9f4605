package transports

import (
	"context"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Unknown is the value of a count or an age the broker does not report
// (for example the unacknowledged deliveries of an AMQP queue, which
// AMQP 0-9-1 does not expose).
const Unknown = -1

// Inspector is the capability of describing what a broker holds: event
// streams, consumer groups, consumers and dead letters. It only reads: it
// never creates, claims or acknowledges anything.
type Inspector interface {
	// Inspect reports the streams and groups selected by opts. A broker
	// that cannot list what it holds (AMQP) inspects only the groups named
	// in opts and returns an error wrapping ErrUnsupported when none is.
	Inspect(ctx context.Context, opts InspectOptions) (*Inspection, error)
}

// InspectOptions select what Inspect reports. Empty fields select everything.
type InspectOptions struct {
	// Events restricts the report to these event names.
	Events []string
	// Groups restricts the report to these consumer groups; on a broker
	// that cannot list its queues, they are the groups to look at.
	Groups []string
}

// Inspection is a snapshot of a broker, sorted by event then group name.
type Inspection struct {
	// Streams are the event streams with their groups. A broker without
	// per-event streams (AMQP) reports none.
	Streams []StreamInfo
	// Groups are every consumer group reported, including groups that
	// only have dead letters left.
	Groups []GroupInfo
	// Notes say what the broker could not report, in words for people.
	Notes []string
}

// StreamInfo describes the stream of one event.
type StreamInfo struct {
	// Event is the event name.
	Event string
	// Key is the broker's name for the stream (a Redis key).
	Key string
	// Length is the number of retained entries.
	Length int64
	// Groups is the number of consumer groups reading the stream.
	Groups int
	// LastEntryAt is when the newest retained entry was added; zero when none.
	LastEntryAt time.Time
}

// GroupInfo describes one consumer group.
type GroupInfo struct {
	// Group is the consumer group, "{service}-{listener}".
	Group string
	// Event is the event the group reads; empty when the broker does not say (AMQP).
	Event string
	// Queue is the broker's name of the group's queue, when it has one (AMQP).
	Queue string
	// Consumers is the number of consumers (Redis, memory: members ever
	// seen and not removed; AMQP: live consumers).
	Consumers int
	// Pending is the number of events delivered and not acknowledged, or Unknown.
	Pending int64
	// Lag is the number of events not yet delivered to the group, or Unknown.
	Lag int64
	// OldestPending is the age of the oldest unacknowledged event (since it
	// was added to the stream); 0 when nothing is pending, Unknown when the
	// broker does not say.
	OldestPending time.Duration
	// DeadLetters is the number of events in the group's dead-letter destination.
	DeadLetters int64
	// Members describes each consumer, when the broker reports them.
	Members []ConsumerInfo
}

// ConsumerInfo describes one consumer (process) of a group.
type ConsumerInfo struct {
	// Name is the consumer name: the process name.
	Name string
	// Pending is the number of events it holds unacknowledged.
	Pending int64
	// Idle is the time since it last read or acknowledged, or Unknown.
	Idle time.Duration
	// Live is set when the transport knows that a process of this name
	// holds an open subscription of the group now (memory: an open
	// subscription; Redis: the subscription's liveness key). A live
	// consumer that has read nothing for long is quiet, not stale. False
	// says nothing where the transport cannot tell.
	Live bool
}

// Tailer is the capability of following the events fired on a topic
// without joining or disturbing any consumer group: nothing is claimed,
// acknowledged or left behind.
type Tailer interface {
	// Tail calls fn for every event fired on topic, in stream order, until
	// ctx is done (it then returns ctx's error) or fn returns an error,
	// which Tail returns. A transport that keeps no history returns an
	// error wrapping ErrUnsupported when opts.Since is not the default.
	Tail(ctx context.Context, topic string, opts TailOptions, fn func(TailedEvent) error) error
}

// TailOptions configure Tail.
type TailOptions struct {
	// Since is where to start: the zero value follows only events fired
	// after Tail started; SinceBeginning or SinceTime read retained history first.
	Since Since
	// Ready, when set, is called once Tail follows the topic: an event
	// fired after Ready returned is seen.
	Ready func()
}

// TailedEvent is one event seen by Tail.
type TailedEvent struct {
	// Topic is the event name.
	Topic string
	// Position is the broker's position of the entry (a Redis stream ID,
	// a memory sequence number, an AMQP delivery tag).
	Position string
	// At is when the broker added the entry; zero when it does not say.
	At time.Time
	// Message is the event; its UUID is the event ID. It is a copy.
	Message *message.Message
	// Err is set when the entry could not be decoded; Message then holds
	// what could be read.
	Err error
}
