package nats

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
)

// subscriber is a placeholder until the engine lands.
type subscriber struct {
	t   *Transport
	cfg transports.SubscriberConfig
}

func newSubscriber(t *Transport, cfg transports.SubscriberConfig) *subscriber {
	return &subscriber{t: t, cfg: cfg}
}

func (s *subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	return nil, transports.ErrUnsupported
}

func (s *subscriber) Close() error { s.t.forget(s); return nil }
