package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/busline/busline/transports"
)

// streamConfig is the configuration of the stream of event.
func (t *Transport) streamConfig(event string) jetstream.StreamConfig {
	maxMsgs := t.opts.maxLen(event)
	if maxMsgs <= 0 {
		maxMsgs = -1
	}
	return jetstream.StreamConfig{
		Name:        t.opts.StreamName(event),
		Description: "busline event " + event,
		Subjects:    []string{t.opts.Subject(event)},
		Retention:   jetstream.LimitsPolicy,
		MaxMsgs:     maxMsgs,
		MaxBytes:    -1,
		MaxAge:      0,
		// A negative limit means none.
		MaxConsumers:      -1,
		MaxMsgsPerSubject: -1,
		Discard:           jetstream.DiscardOld,
		Storage:           t.opts.Storage,
		Replicas:          t.opts.Replicas,
		Duplicates:        t.opts.DedupWindow,
		AllowDirect:       true,
	}
}

// ensureStream makes sure the stream of event exists with the transport's
// limits, once per transport and event (again after forgetStream).
func (t *Transport) ensureStream(ctx context.Context, event string) (jetstream.Stream, error) {
	if s, ok := t.streams.Load(event); ok {
		return s.(jetstream.Stream), nil
	}
	if err := checkEvent(event); err != nil {
		return nil, err
	}
	ctx, cancel := t.timeout(ctx)
	defer cancel()
	cfg := t.streamConfig(event)
	s, err := t.js.Stream(ctx, cfg.Name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		s, err = t.js.CreateStream(ctx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = t.js.Stream(ctx, cfg.Name)
		}
	case err == nil:
		s, err = t.reconcile(ctx, s, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("nats: stream %s: %w", cfg.Name, err)
	}
	t.streams.Store(event, s)
	return s, nil
}

// reconcile brings the existing stream s to the limits the URL asks for
// in want (maxlen, dedup_window, dead_maxlen; replicas when more than the
// stream has), which JetStream can change in place. The storage it cannot change: a stream kept in
// another storage than the URL's is used as it is, with a warning.
func (t *Transport) reconcile(ctx context.Context, s jetstream.Stream, want jetstream.StreamConfig) (jetstream.Stream, error) {
	if t.opts.KeepLimits {
		return s, nil // a tool: the services' URLs set the limits
	}
	cur := s.CachedInfo().Config
	if cur.Storage != want.Storage {
		t.log.Warn("nats: the stream exists with another storage than the URL asks for, and JetStream cannot change it: it is used as it is (delete the stream to recreate it)",
			slog.String("stream", cur.Name), slog.String("storage", cur.Storage.String()), slog.String("url_storage", want.Storage.String()))
	}
	next := cur
	next.MaxMsgs, next.MaxMsgsPerSubject = want.MaxMsgs, want.MaxMsgsPerSubject
	if want.Duplicates > 0 { // 0: the server's default
		next.Duplicates = want.Duplicates
	}
	if want.Replicas > cur.Replicas {
		// Up only: a URL without replicas= (1 by default) must not scale
		// down a stream another process made with more.
		next.Replicas = want.Replicas
	}
	if next.MaxMsgs == cur.MaxMsgs && next.MaxMsgsPerSubject == cur.MaxMsgsPerSubject &&
		next.Duplicates == cur.Duplicates && next.Replicas == cur.Replicas {
		return s, nil
	}
	return t.js.UpdateStream(ctx, next)
}

// streamCreatedNow asks the server when the stream of event was created
// (a cached handle may be of a stream deleted and made again since).
func (t *Transport) streamCreatedNow(ctx context.Context, event string) (time.Time, error) {
	ctx, cancel := t.timeout(ctx)
	defer cancel()
	s, err := t.js.Stream(ctx, t.opts.StreamName(event))
	if err != nil {
		return time.Time{}, fmt.Errorf("nats: stream %s: %w", t.opts.StreamName(event), err)
	}
	return s.CachedInfo().Created, nil
}

// forgetStream makes the next ensureStream of event ask the server again
// (the stream was deleted under the transport).
func (t *Transport) forgetStream(event string) { t.streams.Delete(event) }

// ensureDeadStream makes sure the stream of dead letters exists: one
// stream "{prefix}_dead", a subject per group, capped per subject by
// DeadMaxLen.
func (t *Transport) ensureDeadStream(ctx context.Context) (jetstream.Stream, error) {
	ctx, cancel := t.timeout(ctx)
	defer cancel()
	name := t.opts.DeadStream()
	if t.dead.Load() {
		s, err := t.js.Stream(ctx, name)
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return s, err
		}
		// Deleted under the transport (by an operator, or lost by a server
		// restarted without its store): make it again.
		t.dead.Store(false)
	}
	perSubject := t.opts.DeadMaxLen
	if perSubject <= 0 {
		perSubject = -1
	}
	cfg := jetstream.StreamConfig{
		Name:              name,
		Description:       "busline dead letters",
		Subjects:          []string{t.opts.Prefix + "._dead.>"},
		Retention:         jetstream.LimitsPolicy,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		MaxConsumers:      -1,
		MaxMsgsPerSubject: perSubject,
		Discard:           jetstream.DiscardOld,
		Storage:           t.opts.Storage,
		Replicas:          t.opts.Replicas,
		AllowDirect:       true,
	}
	s, err := t.js.Stream(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		s, err = t.js.CreateStream(ctx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = t.js.Stream(ctx, name)
		}
	case err == nil:
		s, err = t.reconcile(ctx, s, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("nats: stream %s: %w", name, err)
	}
	t.dead.Store(true)
	return s, nil
}

// consumerConfig is the durable pull consumer of group on the stream of
// event: explicit acks, AckWait = AckTimeout, no MaxDeliver (Busline
// bounds redelivery itself), and the start position of since, or, when
// after is not 0, the stream sequence after it.
func (t *Transport) consumerConfig(event, group string, ackWait time.Duration, since transports.Since, after uint64) jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		Durable:       ConsumerName(group),
		Description:   "busline group " + group,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1,
		MaxAckPending: t.opts.MaxAckPending,
		FilterSubject: t.opts.Subject(event),
		ReplayPolicy:  jetstream.ReplayInstantPolicy,
		DeliverPolicy: jetstream.DeliverNewPolicy,
		Replicas:      t.opts.Replicas,
		MemoryStorage: t.opts.Storage == jetstream.MemoryStorage,
	}
	switch at, isTime := since.Time(); {
	case after > 0:
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = after + 1
	case since.IsBeginning():
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	case isTime:
		at = at.UTC()
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &at
	}
	return cfg
}

// ensureConsumer returns the durable consumer of group on the stream of
// event, creating it when it does not exist at the position since says,
// or just after stream sequence after when that is not 0.
// An existing consumer keeps its position, and its AckWait is raised to
// ackWait, never lowered: the group's running processes keep their
// messages alive at a third of the AckWait they opened with, and a
// shorter one set by a process joining later would have the server hand
// those messages to another process while their handlers still run.
func (t *Transport) ensureConsumer(ctx context.Context, event, group string, ackWait time.Duration, since transports.Since, after uint64) (jetstream.Consumer, error) {
	s, err := t.ensureStream(ctx, event)
	if err != nil {
		return nil, err
	}
	ctx, cancel := t.timeout(ctx)
	defer cancel()
	cfg := t.consumerConfig(event, group, ackWait, since, after)
	c, err := s.Consumer(ctx, cfg.Durable)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		// Deleted under us: make it again. Its sequences start again, so
		// a start after a sequence of the old one means nothing.
		t.forgetStream(event)
		if s, err = t.ensureStream(ctx, event); err != nil {
			return nil, err
		}
		cfg = t.consumerConfig(event, group, ackWait, since, 0)
		c, err = s.Consumer(ctx, cfg.Durable)
	}
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		c, err = s.CreateConsumer(ctx, cfg)
		if errors.Is(err, jetstream.ErrConsumerExists) {
			c, err = s.Consumer(ctx, cfg.Durable)
		}
	case err == nil:
		cur := c.CachedInfo().Config
		if cur.AckWait < ackWait || cur.MaxAckPending != cfg.MaxAckPending {
			cur.AckWait, cur.MaxAckPending = max(cur.AckWait, ackWait), cfg.MaxAckPending
			c, err = s.UpdateConsumer(ctx, cur)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("nats: consumer %s on %s: %w", cfg.Durable, t.opts.StreamName(event), err)
	}
	return c, nil
}
