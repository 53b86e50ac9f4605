package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
)

// MetaDeliverAt is the metadata key of a scheduled event: its due time,
// RFC 3339 with nanoseconds. Handlers can read it from Delivery.Metadata.
const MetaDeliverAt = "busline-deliver-at"

// MaxDelay is the furthest ahead an event can be scheduled with WithDelay
// or WithDeliverAt: 30 days.
const MaxDelay = transports.MaxScheduleAhead

var (
	// ErrDelayTooLong: WithDelay or WithDeliverAt asked for a due time more
	// than MaxDelay ahead.
	ErrDelayTooLong = transports.ErrScheduleTooFar
	// ErrNotScheduled: CancelScheduled was given the ID of an event that is
	// not waiting for its due time (already delivered, cancelled, or never
	// scheduled).
	ErrNotScheduled = transports.ErrNotScheduled
	// ErrUnsupported: the transport cannot do what was asked (for example
	// cancel a scheduled event on RabbitMQ).
	ErrUnsupported = transports.ErrUnsupported
)

// WithDelay fires the event for delivery d from now: Fire returns once the
// broker holds it durably, and every consumer group gets it no earlier
// than that — including groups created in the meantime. A delay of zero or
// less delivers at once; more than MaxDelay is an error wrapping
// ErrDelayTooLong. Event IDs of delayed events are made at Fire, like
// every other; cancel one with CancelScheduled.
func WithDelay(d time.Duration) FireOption {
	return func(o *fireOptions) { o.delay, o.due = d, time.Time{} }
}

// WithDeliverAt fires the event for delivery at t, as WithDelay(time.Until(t)).
// A time in the past delivers at once.
func WithDeliverAt(t time.Time) FireOption {
	return func(o *fireOptions) { o.due, o.delay = t, 0 }
}

// dueTime returns the due time the options ask for, and false when the
// event is to be published at once.
func (o *fireOptions) dueTime(now time.Time) (time.Time, bool) {
	due := o.due
	if due.IsZero() && o.delay > 0 {
		due = now.Add(o.delay)
	}
	if due.IsZero() || !due.After(now) {
		return time.Time{}, false
	}
	return due, true
}

// publish hands msg to the transport: at once, or for later when the
// options carry a due time in the future.
func (b *Bus) publish(ctx context.Context, topic string, msg *message.Message, o *fireOptions) error {
	now := time.Now()
	due, later := o.dueTime(now)
	if !later {
		if o.publish != nil {
			return o.publish(ctx, topic, msg)
		}
		return b.transport.Publish(topic, msg)
	}
	if o.publish != nil {
		// The other path would deliver it at once: early.
		return fmt.Errorf("%w: WithDelay and WithDeliverAt cannot be used when the event goes to a PublishFunc (bus.FireTo, outbox.Fire), which would deliver it at once", transports.ErrUnsupported)
	}
	if err := transports.CheckDue(now, due); err != nil {
		return err
	}
	s, ok := b.transport.(transports.Scheduler)
	if !ok {
		return fmt.Errorf("%w: the %s:// transport cannot schedule events", transports.ErrUnsupported, b.scheme)
	}
	msg.Metadata[MetaDeliverAt] = due.UTC().Format(time.RFC3339Nano)
	return s.Schedule(ctx, topic, due, msg)
}

// CancelScheduled removes an event fired with WithDelay or WithDeliverAt
// before it is due, so that no group gets it. It returns an error
// wrapping ErrNotScheduled when the event is no longer waiting (it is
// due and moved, already cancelled, or was never scheduled), and one
// wrapping ErrUnsupported on a transport that cannot remove a scheduled
// event (RabbitMQ: see docs/scheduling.md).
func CancelScheduled(ctx context.Context, b *Bus, id string) error {
	if b == nil {
		return fmt.Errorf("%w: nil *Bus", ErrInvalidConfig)
	}
	if b.closed.Load() {
		return ErrClosed
	}
	s, ok := b.transport.(transports.Scheduler)
	if !ok {
		return fmt.Errorf("bus: cancel %s: %w: the %s:// transport cannot schedule events", id, transports.ErrUnsupported, b.scheme)
	}
	if err := s.CancelScheduled(ctx, id); err != nil {
		return fmt.Errorf("bus: cancel scheduled event %s: %w", id, err)
	}
	return nil
}
