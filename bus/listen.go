package bus

import (
	"context"
	"fmt"
	"reflect"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
)

// Delivery is one delivery of an event to a listener.
type Delivery[T any] struct {
	// ID is the event ID, the same for every redelivery.
	ID string
	// Event is the event name, "competitor_prices.changed".
	Event string
	// Payload is the decoded payload.
	Payload T
	// Metadata is the event's metadata (envelope keys included).
	Metadata map[string]string
	// FiredAt is when the event was fired.
	FiredAt time.Time
	// Attempt is the delivery number: 1 on the first delivery. It survives
	// process restarts; in-process retries within one delivery share it.
	Attempt int
	// Group is the consumer group, "{service}-{listener}".
	Group string
}

// Handler handles one delivery. Return nil to acknowledge the event; an
// error to have it retried (or dead-lettered after MaxDeliveries); an error
// marked with Permanent to dead-letter it at once.
type Handler[T any] func(ctx context.Context, d Delivery[T]) error

// Listen registers a listener of e before Start. listener names the
// consumer group "{service}-{listener}": each distinct name gets its own
// copy of every event; processes sharing a name share the events. The same
// name twice in one service is an error, as is an empty name.
func Listen[T any](b *Bus, e Event[T], listener string, h Handler[T], opts ...ListenOption) error {
	if b == nil {
		return fmt.Errorf("%w: nil *Bus", ErrInvalidConfig)
	}
	if e.Name() == "" {
		return fmt.Errorf("%w: zero Event; define events with NewEvent", ErrInvalidEvent)
	}
	if listener == "" {
		return fmt.Errorf("%w: the listener name is required: each distinct name gets its own copy of every event", ErrInvalidListener)
	}
	if err := ValidateName("listener", listener); err != nil {
		return err
	}
	if h == nil {
		return fmt.Errorf("%w: nil handler for %q", ErrInvalidListener, listener)
	}
	var o ListenerOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.validate(); err != nil {
		return fmt.Errorf("listener %q: %w", listener, err)
	}
	o = o.withDefaults(b.cfg.Listener)
	codec := b.cfg.Codec
	group := GroupName(b.cfg.Service, listener)
	topic := e.Name()
	typed := func(msg *message.Message) ([]*message.Message, error) {
		var payload T
		if err := codec.Unmarshal(msg.Payload, &payload); err != nil {
			return nil, Permanent(fmt.Errorf("%w: payload of %s does not unmarshal into %T: %w", ErrDecode, topic, payload, err))
		}
		info := transports.Info(msg)
		return nil, h(msg.Context(), Delivery[T]{
			ID:       msg.UUID,
			Event:    topic,
			Payload:  payload,
			Metadata: msg.Metadata,
			FiredAt:  firedAt(msg),
			Attempt:  info.Attempt,
			Group:    group,
		})
	}
	handler := message.HandlerFunc(typed)
	if b.cfg.ValidatePayloads {
		var err error
		if handler, err = b.validating(topic, reflect.TypeFor[T](), handler); err != nil {
			return fmt.Errorf("listener %q: %w", listener, err)
		}
	}
	if err := b.addListener(&listenerSpec{name: listener, group: group, topic: topic, opts: o, handler: handler}); err != nil {
		return err
	}
	b.schemas.noteListened(topic, reflect.TypeFor[T](), listener)
	return nil
}
