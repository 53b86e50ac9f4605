package bus

import (
	"context"
	"fmt"
	"reflect"
	"time"
)

// FireOption changes one Fire call.
type FireOption func(*fireOptions)

type fireOptions struct {
	metadata map[string]string
	id       string
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
// idempotent listeners skip.
func WithEventID(id string) FireOption { return func(o *fireOptions) { o.id = id } }

// Fire places the event on the bus and returns its ID once the transport has
// accepted it durably (Redis XADD reply, AMQP publisher confirm, memory
// append). It says nothing about whether anyone processed it. A nil error is
// the promise that every consumer group that exists when Fire returns will
// get the event — as long as the group does not fall further behind than
// the stream's retention (maxlen, default 100,000 events per event name on
// memory and Redis): events older than that are trimmed before a group that
// far behind reads them. Size retention for your slowest listener.
func Fire[T any](ctx context.Context, b *Bus, e Event[T], payload T, opts ...FireOption) (string, error) {
	if b == nil {
		return "", fmt.Errorf("%w: nil *Bus", ErrInvalidConfig)
	}
	topic := e.Name()
	if topic == "" {
		return "", fmt.Errorf("%w: zero Event; define events with NewEvent", ErrInvalidEvent)
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if b.closed.Load() {
		return "", ErrClosed
	}
	data, err := b.cfg.Codec.Marshal(payload)
	if err != nil {
		return "", fmt.Errorf("bus: encode %s payload: %w", topic, err)
	}
	if len(data) > b.cfg.MaxPayloadBytes {
		return "", fmt.Errorf("%w: %s payload is %d bytes, the maximum is %d (Config.MaxPayloadBytes)", ErrPayloadTooLarge, topic, len(data), b.cfg.MaxPayloadBytes)
	}
	if b.cfg.ValidatePayloads {
		if err := b.validateFire(topic, reflect.TypeFor[T](), data); err != nil {
			return "", err
		}
	}
	var o fireOptions
	for _, opt := range opts {
		opt(&o)
	}
	msg := newEnvelope(o.id, b.cfg.Service, topic, b.cfg.Codec.ContentType(), data, time.Now())
	id := msg.UUID
	for k, v := range o.metadata {
		if _, reserved := msg.Metadata[k]; !reserved {
			msg.Metadata[k] = v
		}
	}
	ctx, span := b.tel.StartFire(ctx, topic, msg)
	msg.SetContext(ctx)
	err = b.publish(ctx, topic, msg, &o)
	span.End(err)
	if err != nil {
		return "", fmt.Errorf("bus: fire %s: %w", topic, err)
	}
	return id, nil
}
