package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/busline/busline/transports"
)

// Tail implements transports.Tailer with an ordered consumer: ephemeral,
// unacknowledged, flow-controlled, and deleted by the server once Tail
// stops. It joins no group and leaves nothing pending, and creates
// nothing: until the stream of topic exists (its first event), it waits
// for it, and then reads it from its start. A message without an event ID
// is passed to fn with Err set.
func (t *Transport) Tail(ctx context.Context, topic string, opts transports.TailOptions, fn func(transports.TailedEvent) error) error {
	if t.isClosed() {
		return transports.ErrClosed
	}
	if err := checkEvent(topic); err != nil {
		return err
	}
	s, waited, err := t.awaitStream(ctx, topic, opts.Ready)
	if err != nil {
		return err
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy}
	switch at, isTime := opts.Since.Time(); {
	case opts.Since.IsBeginning() || waited:
		// A stream made while this tail waited holds only events fired
		// since it began.
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
	if opts.Ready != nil && !waited {
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
		var stream string
		var seq uint64
		if md, err := m.Metadata(); err == nil {
			ev.Position = strconv.FormatUint(md.Sequence.Stream, 10)
			ev.At = md.Timestamp
			stream, seq = md.Stream, md.Sequence.Stream
		}
		ev.Message, ev.Err = decodeStored(m.Headers(), m.Data(), stream, seq)
		if g := first(m.Headers(), HeaderReplayGroup); g != "" {
			// Not metadata of the event, but what a tail shows of the copy.
			ev.Message.Metadata.Set(transports.MetaReplayGroup, g)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
}

// tailPoll is how often a tail looks for the stream of an event never
// fired yet.
const tailPoll = 500 * time.Millisecond

// awaitStream returns the stream of topic, waiting for it to be made when
// it does not exist yet (waited true; ready, when not nil, is called
// before the wait: an event fired from then on is read).
func (t *Transport) awaitStream(ctx context.Context, topic string, ready func()) (s jetstream.Stream, waited bool, err error) {
	name := t.opts.StreamName(topic)
	for {
		lctx, cancel := t.timeout(ctx)
		s, err = t.js.Stream(lctx, name)
		cancel()
		switch {
		case err == nil:
			return s, waited, nil
		case !errors.Is(err, jetstream.ErrStreamNotFound):
			if ctx.Err() != nil {
				return nil, waited, ctx.Err()
			}
			return nil, waited, fmt.Errorf("nats: tail %s: %w", topic, err)
		}
		if !waited {
			waited = true
			t.log.Info("nats: no event of this name was fired yet; the tail waits for the first", slog.String("event", topic))
			if ready != nil {
				ready()
			}
		}
		select {
		case <-ctx.Done():
			return nil, waited, ctx.Err()
		case <-time.After(tailPoll):
		}
	}
}
