package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/tracing"
)

// WithEventIDs gives the events of a FireBatch call their IDs, in payload
// order, instead of new UUIDv7s: one ID per payload (an empty ID gets a new
// one). Firing a batch again with the IDs a failed call returned makes the
// events it had stored duplicates that idempotent listeners skip. On Fire
// it takes exactly one ID, as WithEventID.
func WithEventIDs(ids ...string) FireOption {
	return func(o *fireOptions) { o.ids = ids }
}

// FireBatch fires one event e for each payload, handing them to the
// transport in one call, and returns their IDs in payload order once the
// transport has accepted all of them durably — one pipeline of XADDs on
// Redis, publishes sent back to back and confirmed together on RabbitMQ,
// asynchronous publishes on NATS. Each event is the one Fire would make of
// its payload (its own ID, envelope, metadata and PRODUCER span); the
// options apply to every event of the batch.
//
// Firing many events one Fire at a time waits for one round trip each;
// FireBatch waits for one round trip for all of them, so a firer that has
// a batch at hand (an import, a fan-out) gets the broker's throughput
// instead of its latency.
//
// Every payload is encoded and checked (size, schema) before any is sent:
// a bad one fails the call with an error naming its index and nothing is
// published. A batch is not atomic: when the transport fails, some events
// may have been stored. FireBatch then returns the IDs with the error, so
// that firing the same payloads again WithEventIDs(ids...) is safe for
// idempotent listeners. WithEventID names one event and is refused here.
// An empty batch fires nothing and returns no IDs.
//
// With WithDelay or WithDeliverAt the events are scheduled one after the
// other (no transport schedules a batch in one call).
func FireBatch[T any](ctx context.Context, b *Bus, e Event[T], payloads []T, opts ...FireOption) ([]string, error) {
	topic, err := b.checkFire(ctx, e.Name())
	if err != nil {
		return nil, err
	}
	var o fireOptions
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case o.id != "":
		return nil, fmt.Errorf("%w: WithEventID names one event; give a batch its IDs with WithEventIDs", ErrInvalidEvent)
	case o.ids != nil && len(o.ids) != len(payloads):
		return nil, fmt.Errorf("%w: %d IDs from WithEventIDs for %d payloads", ErrInvalidEvent, len(o.ids), len(payloads))
	}
	if len(payloads) == 0 {
		return nil, nil
	}
	data := make([][]byte, len(payloads))
	for i, p := range payloads {
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
	err = b.publishBatch(topic, msgs, &o, now)
	for _, s := range spans {
		s.End(err)
	}
	if err != nil {
		return ids, fmt.Errorf("bus: fire batch of %d %s: %w", len(msgs), topic, err)
	}
	return ids, nil
}

// publishBatch hands msgs to the transport in one call, or schedules them
// one by one when the options carry a due time in the future; scheduling
// stops at the first error.
func (b *Bus) publishBatch(topic string, msgs []*message.Message, o *fireOptions, now time.Time) error {
	if _, later := o.dueTime(now); !later {
		return b.transport.Publish(topic, msgs...)
	}
	for i, msg := range msgs {
		if err := b.publish(msg.Context(), topic, msg, o); err != nil {
			if i > 0 {
				return fmt.Errorf("%d of %d scheduled: %w", i, len(msgs), err)
			}
			return err
		}
	}
	return nil
}
