package bus

import (
	"context"
	"fmt"
	"reflect"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// FireOption changes one Fire call.
type FireOption func(*fireOptions)

type fireOptions struct {
	metadata map[string]string
	id       string
	ids      []string      // WithEventIDs
	publish  PublishFunc   // FireTo: instead of the transport
	due      time.Time     // WithDeliverAt
	delay    time.Duration // WithDelay
}

// WithMetadata adds metadata to the event. Keys of the envelope (ce-*,
// content-type) cannot be overridden.
func WithMetadata(md map[string]string) FireOption {
	return func(o *fireOptions) {
		if o.metadata == nil {
			o.metadata = map[string]string{}
		}
		for k, v := range md {
			o.metadata[k] = v
		}
	}
}

// WithEventID fires the event with the given ID instead of a new UUIDv7.
// Firing twice with the same ID makes the second a duplicate that
// idempotent listeners skip. Of WithEventID and WithEventIDs, the last one
// given applies.
func WithEventID(id string) FireOption { return func(o *fireOptions) { o.id, o.ids = id, nil } }

// Fire places the event on the bus and returns its ID once the transport has
// accepted it durably (Redis XADD reply, AMQP publisher confirm, memory
// append). It says nothing about whether anyone processed it. A nil error is
// the promise that every consumer group that exists when Fire returns will
// get the event — as long as the group does not fall further behind than
// the stream's retention (maxlen, default 100,000 events per event name on
// memory and Redis): events older than that are trimmed before a group that
// far behind reads them. Size retention for your slowest listener.
func Fire[T any](ctx context.Context, b *Bus, e Event[T], payload T, opts ...FireOption) (string, error) {
	topic := e.Name()
	if err := b.checkFire(ctx, topic); err != nil {
		return "", err
	}
	data, err := encodePayload(b, topic, payload)
	if err != nil {
		return "", err
	}
	o := applyFireOptions(opts)
	if o.ids != nil {
		if len(o.ids) != 1 {
			return "", fmt.Errorf("%w: Fire got %d IDs from WithEventIDs, want 1", ErrInvalidEvent, len(o.ids))
		}
		o.id = o.ids[0]
	}
	msg := b.newMessage(o.id, topic, data, &o, time.Now())
	id := msg.UUID
	ctx, span := b.tel.StartFire(ctx, topic, msg)
	msg.SetContext(ctx)
	err = b.publish(ctx, topic, msg, &o)
	span.End(err)
	if err != nil {
		return "", fmt.Errorf("bus: fire %s: %w", topic, err)
	}
	return id, nil
}

// applyFireOptions returns the options opts set. Applied to a copy, so
// that the caller's fireOptions stays on its stack when no option is given.
func applyFireOptions(opts []FireOption) fireOptions {
	if len(opts) == 0 {
		return fireOptions{}
	}
	var o fireOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// checkFire reports whether the bus, the event named name and ctx allow
// firing.
func (b *Bus) checkFire(ctx context.Context, name string) error {
	switch {
	case b == nil:
		return fmt.Errorf("%w: nil *Bus", ErrInvalidConfig)
	case name == "":
		return fmt.Errorf("%w: zero Event; define events with NewEvent", ErrInvalidEvent)
	case ctx.Err() != nil:
		return ctx.Err()
	case b.closed.Load():
		return ErrClosed
	}
	return nil
}

// MaxPayloadBytes returns the largest encoded payload Fire accepts:
// Config.MaxPayloadBytes, or less on a broker that limits a message with
// its headers (transports.MessageLimiter), and what sets it.
func (b *Bus) MaxPayloadBytes() (int, string) { return b.maxPayload, b.payloadLimit }

// encodePayload encodes the payload of an event on topic with the bus's
// codec, and checks its size and (Config.ValidatePayloads) its schema.
func encodePayload[T any](b *Bus, topic string, payload T) ([]byte, error) {
	data, err := b.cfg.Codec.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("bus: encode %s payload: %w", topic, err)
	}
	if len(data) > b.maxPayload {
		return nil, fmt.Errorf("%w: %s payload is %d bytes, the maximum is %d (%s)", ErrPayloadTooLarge, topic, len(data), b.maxPayload, b.payloadLimit)
	}
	if b.cfg.ValidatePayloads {
		if err := b.validateFire(topic, reflect.TypeFor[T](), data); err != nil {
			return nil, err
		}
	}
	return data, nil
}

// newMessage builds the message of one event: its envelope (ID id, or a
// new UUIDv7 when empty) and the metadata of WithMetadata, which cannot
// override the envelope's keys.
func (b *Bus) newMessage(id, topic string, data []byte, o *fireOptions, now time.Time) *message.Message {
	msg := newEnvelope(id, b.cfg.Service, topic, b.cfg.Codec.ContentType(), data, now)
	for k, v := range o.metadata {
		if _, reserved := msg.Metadata[k]; !reserved {
			msg.Metadata[k] = v
		}
	}
	return msg
}
