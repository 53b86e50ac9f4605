package nats

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/busline/busline/transports"
)

// Tail implements transports.Tailer with an ordered consumer: ephemeral,
// unacknowledged, flow-controlled, and deleted by the server once Tail
// stops. It joins no group and leaves nothing pending. The stream of topic
// is created when it does not exist yet. A message without an event ID is
// passed to fn with Err set.
func (t *Transport) Tail(ctx context.Context, topic string, opts transports.TailOptions, fn func(transports.TailedEvent) error) error {
	if t.isClosed() {
		return transports.ErrClosed
	}
	s, err := t.ensureStream(ctx, topic)
	if err != nil {
		return err
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy}
	switch at, isTime := opts.Since.Time(); {
	case opts.Since.IsBeginning():
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	case isTime:
		at = at.UTC()
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &at
	}
	cctx, cancel := t.timeout(ctx)
	c, err := s.OrderedConsumer(cctx, cfg)
	cancel()
	if err != nil {
		return fmt.Errorf("nats: tail %s: %w", topic, err)
	}
	it, err := c.Messages()
	if err != nil {
		return fmt.Errorf("nats: tail %s: %w", topic, err)
	}
	var once sync.Once
	stop := func() { once.Do(it.Stop) }
	defer stop()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			stop()
		case <-done:
		}
	}()
	if opts.Ready != nil {
		opts.Ready()
	}
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return transports.ErrClosed
			}
			return fmt.Errorf("nats: tail %s: %w", topic, err)
		}
		ev := transports.TailedEvent{Topic: topic}
		if md, err := m.Metadata(); err == nil {
			ev.Position = strconv.FormatUint(md.Sequence.Stream, 10)
			ev.At = md.Timestamp
		}
		ev.Message, ev.Err = decode(m.Headers(), m.Data())
		if g := first(m.Headers(), HeaderReplayGroup); g != "" {
			// Not metadata of the event, but what a tail shows of the copy.
			ev.Message.Metadata.Set(transports.MetaReplayGroup, g)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
}
