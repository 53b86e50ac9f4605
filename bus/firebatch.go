package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/tracing"
)

// MaxBatchCall is the most events FireBatch hands to the transport in one
// call; a larger batch goes in calls of this many, one after the other, so
// that no broker's publish timeout or pending-publish limit has to cover
// more than that.
const MaxBatchCall = 1000

// WithEventIDs gives the events of a FireBatch call their IDs, in payload
// order, instead of new UUIDv7s: one distinct ID per payload (an empty ID
// gets a new one; no IDs at all, as WithEventIDs(nil...), leaves every
// event a new one). Firing a batch again with the IDs a failed call
// returned makes the events it had stored duplicates that idempotent
// listeners skip. On Fire it takes exactly one ID, as WithEventID; of the
// two, the last one given applies.
func WithEventIDs(ids ...string) FireOption {
	if len(ids) == 0 {
		ids = nil
	}
	return func(o *fireOptions) { o.ids, o.id = ids, "" }
}

// FireBatch fires one event e for each payload and returns their IDs in
// payload order once the transport has accepted all of them durably. The
// events go to the transport together, up to MaxBatchCall per call, and
// it sends them in as few round trips as it can: pipelines of
// XADDs on Redis (up to its publish_batch, 256, per pipeline), publishes
// sent back to back and confirmed together on RabbitMQ, asynchronous
// publishes on NATS. Each event is the one Fire would make of its payload
// (its own ID, envelope, metadata and PRODUCER span); the options apply to
// every event of the batch.
//
// Firing events one Fire at a time waits for a round trip each; FireBatch
// waits for a few for the whole batch, so a firer that has many events at
// hand (an import, a fan-out) gets the broker's throughput instead of its
// latency.
//
// Every payload is encoded and checked (size, schema) before any is sent:
// a bad one fails the call with an error naming its index and nothing is
// published. A batch is not atomic: when the transport fails, some events
// may have been stored. FireBatch then returns the IDs with the error, so
// that firing the same payloads again WithEventIDs(ids...) is safe for
// idempotent listeners. WithEventID names one event and is refused here,
// as are repeated IDs in WithEventIDs. An empty batch fires nothing and
// returns no IDs.
//
// With WithDelay or WithDeliverAt the events are scheduled one after the
// other (no transport schedules a batch in one call). The events of a
// batch reach the broker in payload order.
func FireBatch[T any](ctx context.Context, b *Bus, e Event[T], payloads []T, opts ...FireOption) ([]string, error) {
	topic := e.Name()
	if err := b.checkFire(ctx, topic); err != nil {
		return nil, err
	}
	o := applyFireOptions(opts)
	if err := checkBatchIDs(&o, len(payloads)); err != nil {
		return nil, err
	}
	if len(payloads) == 0 {
		return nil, nil
	}
	data := make([][]byte, len(payloads))
	for i, p := range payloads {
		var err error
		if data[i], err = encodePayload(b, topic, p); err != nil {
			return nil, fmt.Errorf("bus: fire batch of %s: payload %d: %w", topic, i, err)
		}
	}
	now := time.Now()
	msgs := make([]*message.Message, len(payloads))
	ids := make([]string, len(payloads))
	spans := make([]tracing.FireSpan, len(payloads))
	for i := range payloads {
		var id string
		if o.ids != nil {
			id = o.ids[i]
		}
		msg := b.newMessage(id, topic, data[i], &o, now)
		var mctx context.Context
		mctx, spans[i] = b.tel.StartFire(ctx, topic, msg)
		msg.SetContext(mctx)
		msgs[i], ids[i] = msg, msg.UUID
	}
	stored, err := b.publishBatch(topic, msgs, &o, now)
	for i, s := range spans {
		if i < stored {
			s.End(nil)
		} else {
			s.End(err)
		}
	}
	if err != nil {
		return ids, fmt.Errorf("bus: fire batch of %d %s: %w", len(msgs), topic, err)
	}
	return ids, nil
}

// checkBatchIDs refuses the ID options a batch of n events cannot take:
// WithEventID, and WithEventIDs with another count or a repeated ID.
func checkBatchIDs(o *fireOptions, n int) error {
	if o.id != "" {
		return fmt.Errorf("%w: WithEventID names one event; give a batch its IDs with WithEventIDs", ErrInvalidEvent)
	}
	if o.ids == nil {
		return nil
	}
	if len(o.ids) != n {
		return fmt.Errorf("%w: %d IDs from WithEventIDs for %d payloads", ErrInvalidEvent, len(o.ids), n)
	}
	seen := make(map[string]int, len(o.ids))
	for i, id := range o.ids {
		if id == "" {
			continue
		}
		if j, dup := seen[id]; dup {
			return fmt.Errorf("%w: WithEventIDs gives payloads %d and %d the same ID %q", ErrInvalidEvent, j, i, id)
		}
		seen[id] = i
	}
	return nil
}

// publishBatch hands msgs to the transport, MaxBatchCall at a time, or
// schedules them one by one when the options carry a due time in the
// future. It stops at the first error and returns how many messages are
// known to be stored (those before the failing call or schedule).
func (b *Bus) publishBatch(topic string, msgs []*message.Message, o *fireOptions, now time.Time) (int, error) {
	if _, later := o.dueTime(now); later {
		for i, msg := range msgs {
			if err := b.publish(msg.Context(), topic, msg, o); err != nil {
				return i, withStored(i, len(msgs), err)
			}
		}
		return len(msgs), nil
	}
	for i := 0; i < len(msgs); i += MaxBatchCall {
		err := msgs[i].Context().Err() // the caller's context, under the span
		if err == nil {
			err = b.transport.Publish(topic, msgs[i:min(i+MaxBatchCall, len(msgs))]...)
		}
		if err != nil {
			return i, withStored(i, len(msgs), err)
		}
	}
	return len(msgs), nil
}

// withStored says how many of n events were stored before err, when some were.
func withStored(stored, n int, err error) error {
	if stored == 0 {
		return err
	}
	return fmt.Errorf("the first %d of %d stored, the rest may not be: %w", stored, n, err)
}
