package engine

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
)

var _ message.SubscribeInitializer = (*Subscriber)(nil)

// SubscribeInitialize creates the subscriber's consumer group on topic
// (at its Since) and returns once it exists, without reading from it:
// events fired afterwards are kept for the group until a Subscribe reads
// them. It is Watermill's message.SubscribeInitializer, which Watermill
// users and its Pub/Sub test suite call before publishing to a topic
// nobody has subscribed to yet.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return transports.ErrClosed
	}
	if topic == "" {
		return fmt.Errorf("%w: subscribe initialize: empty topic", transports.ErrInvalidConfig)
	}
	ds, err := s.d.Open(context.Background(), topic, s.cfg)
	if err != nil {
		return err
	}
	return ds.Close()
}
