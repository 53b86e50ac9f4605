package nats

import (
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/engine"
)

// NewSubscriber returns the delivery engine's subscriber over this
// driver: it reads as process cfg.Consumer of the durable consumer of
// group cfg.Group.
func (t *Transport) NewSubscriber(cfg transports.SubscriberConfig) (message.Subscriber, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkGroup(cfg.Group); err != nil {
		return nil, err
	}
	var s *engine.Subscriber
	s, err := engine.New(t, cfg, engine.Options{Logger: t.log, OnClose: func() { t.subs.Remove(s) }})
	if err != nil {
		return nil, err
	}
	if err := t.subs.Add(s); err != nil {
		return nil, err
	}
	return s, nil
}
