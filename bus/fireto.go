package bus

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
)

// PublishFunc takes the message of one event in place of the bus's
// transport: see FireTo.
type PublishFunc func(ctx context.Context, topic string, msg *message.Message) error

// FireTo is Fire with the last step replaced by publish: it encodes the
// payload and builds the event's message exactly as Fire does — the event
// ID (a new UUIDv7, or WithEventID) as the message UUID, the CloudEvents
// metadata, WithMetadata — starts the PRODUCER span and writes the trace
// context into the metadata, then hands the message to publish instead of
// the transport. It returns the event ID once publish returned nil, and
// fails as Fire does on a closed bus.
//
// It is for code that delivers events through another path and must keep
// the envelope identical to Fire's, such as the transactional outbox
// (package outbox), which writes the message to a table in the caller's
// database transaction.
func FireTo[T any](ctx context.Context, b *Bus, e Event[T], payload T, publish PublishFunc, opts ...FireOption) (string, error) {
	if publish == nil {
		return "", fmt.Errorf("%w: nil PublishFunc", ErrInvalidConfig)
	}
	opts = append(opts[:len(opts):len(opts)], func(o *fireOptions) { o.publish = publish })
	return Fire(ctx, b, e, payload, opts...)
}
