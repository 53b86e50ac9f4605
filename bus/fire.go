package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// FireOption changes one Fire call.
type FireOption func(*fireOptions)

type fireOptions struct {
	metadata map[string]string
	id       string
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
	return fire(ctx, b, e, payload, nil, opts)
}

// PublishFunc takes the message of one event in place of the bus's
// transport: see FireTo.
type PublishFunc func(ctx context.Context, topic string, msg *message.Message) error

// FireTo is Fire with the last step replaced by publish: it encodes the
// payload and builds the event's message exactly as Fire does — the event
// ID (a new UUIDv7, or WithEventID) as the message UUID, the CloudEvents
// metadata, WithMetadata — starts the PRODUCER span and writes the trace
// context into the metadata, then hands the message to publish instead of
// the transport. It returns the event ID once publish returned nil. It
// works on a closed bus too: it does not touch the transport.
//
// It is for code that delivers events through another path and must keep
// the envelope identical to Fire's, such as the transactional outbox
// (package outbox), which writes the message to a table in the caller's
// database transaction.
func FireTo[T any](ctx context.Context, b *Bus, e Event[T], payload T, publish PublishFunc, opts ...FireOption) (string, error) {
	if b == nil {
		return "", fmt.Errorf("%w: nil *Bus", ErrInvalidConfig)
	}
	if publish == nil {
		return "", fmt.Errorf("%w: nil PublishFunc", ErrInvalidConfig)
	}
	return fire(ctx, b, e, payload, publish, opts)
}

// fire is Fire and FireTo: publish nil means the transport.
func fire[T any](ctx context.Context, b *Bus, e Event[T], payload T, publish PublishFunc, opts []FireOption) (string, error) {
	topic := e.Name()
	if topic == "" {
		return "", fmt.Errorf("%w: zero Event; define events with NewEvent", ErrInvalidEvent)
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if publish == nil && b.closed.Load() {
		return "", ErrClosed
	}
	data, err := b.cfg.Codec.Marshal(payload)
	if err != nil {
		return "", fmt.Errorf("bus: encode %s payload: %w", topic, err)
	}
	if len(data) > b.cfg.MaxPayloadBytes {
		return "", fmt.Errorf("%w: %s payload is %d bytes, the maximum is %d (Config.MaxPayloadBytes)", ErrPayloadTooLarge, topic, len(data), b.cfg.MaxPayloadBytes)
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
	if publish == nil {
		err = b.transport.Publish(topic, msg)
	} else {
		err = publish(ctx, topic, msg)
	}
	span.End(err)
	if err != nil {
		return "", fmt.Errorf("bus: fire %s: %w", topic, err)
	}
	return id, nil
}
