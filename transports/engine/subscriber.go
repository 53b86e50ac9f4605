package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/driver"
)

// Defaults of Options.
const (
	// DefaultReceiveWait is how long one read waits for new entries.
	DefaultReceiveWait = 5 * time.Second
	// DefaultReadAheadHorizon: an entry read ahead of the free slots
	// waits about this long, at most, for a slot (Options.ReadAheadHorizon).
	DefaultReadAheadHorizon = 20 * time.Millisecond
	// DefaultFlushTimeout bounds the last flush of settlements at Close.
	DefaultFlushTimeout = 5 * time.Second
	// MismatchDelay is how long a delivery of another topic waits before
	// the broker delivers it again (to the subscription it belongs to).
	MismatchDelay = 100 * time.Millisecond

	minClaimInterval = 20 * time.Millisecond
	maxClaimInterval = 30 * time.Second
)

// Options tune an engine subscriber. The zero value is usable.
type Options struct {
	// Logger receives warnings about broker errors; slog.Default() when nil.
	Logger *slog.Logger
	// ReceiveWait is the longest one Receive waits for new entries
	// (DefaultReceiveWait when zero).
	ReceiveWait time.Duration
	// ClaimInterval is how often idle entries of other members are
	// claimed, on brokers with a pending list (AckTimeout/4 when zero,
	// between 20ms and 30s).
	ClaimInterval time.Duration
	// KeepAliveInterval is how often the claims of held entries are kept
	// alive (AckTimeout/3 when zero; a third of the driver's AckWait
	// when that is shorter).
	KeepAliveInterval time.Duration
	// ReadAheadHorizon sizes reads ahead of the free slots, on a driver
	// that reads ahead: at most the entries the slots hand out within it
	// at their recent rate (DefaultReadAheadHorizon when zero; negative:
	// the driver's Capabilities.ReadAhead alone).
	ReadAheadHorizon time.Duration
	// FlushTimeout bounds the last flush at Close (DefaultFlushTimeout when zero).
	FlushTimeout time.Duration
	// OnClose is called once when the subscriber has closed (a transport
	// forgets it there).
	OnClose func()
}

func (o Options) withDefaults(cfg transports.SubscriberConfig) Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ReceiveWait <= 0 {
		o.ReceiveWait = DefaultReceiveWait
	}
	if o.ClaimInterval <= 0 {
		o.ClaimInterval = min(max(cfg.AckTimeout/4, minClaimInterval), maxClaimInterval)
	}
	if o.KeepAliveInterval <= 0 {
		o.KeepAliveInterval = max(cfg.AckTimeout/3, minClaimInterval/2)
	}
	if o.FlushTimeout <= 0 {
		o.FlushTimeout = DefaultFlushTimeout
	}
	if o.ReadAheadHorizon == 0 {
		o.ReadAheadHorizon = DefaultReadAheadHorizon
	}
	return o
}

// Subscriber is the message.Subscriber of one member of one consumer group
// over a driver. Each Subscribe reads one topic.
type Subscriber struct {
	d    driver.Driver
	cfg  transports.SubscriberConfig
	opts Options

	mu       sync.Mutex
	closed   bool
	closeEnd chan struct{} // closed once the first Close has finished
	subs     []*subscription
}

var _ message.Subscriber = (*Subscriber)(nil)

// New returns a subscriber reading through d as cfg says.
func New(d driver.Driver, cfg transports.SubscriberConfig, opts Options) (*Subscriber, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Subscriber{d: d, cfg: cfg, opts: opts.withDefaults(cfg), closeEnd: make(chan struct{})}, nil
}

// Subscribe joins the group on topic (creating it at Since when needed)
// and returns once it exists. Messages come on the returned channel, at
// most Concurrency at a time not yet acked or nacked; it is closed once
// ctx is done or the subscriber closes. Messages handed out can be acked
// or nacked until Close, also after ctx is done.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	sub, err := s.subscribe(ctx, topic, false)
	if err != nil {
		return nil, err
	}
	return sub.out, nil
}

// subscribe opens the driver's subscription to topic and starts reading:
// with the engine's slot goroutines sending on sub.out, or with
// Concurrency caller slots (sub.callerSlots) for SubscribeSlots.
func (s *Subscriber) subscribe(ctx context.Context, topic string, callerSlots bool) (*subscription, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, transports.ErrClosed
	}
	if topic == "" {
		return nil, fmt.Errorf("%w: subscribe: empty topic", transports.ErrInvalidConfig)
	}
	ds, err := s.d.Open(ctx, topic, s.cfg)
	if err != nil {
		return nil, err
	}
	sub := newSubscription(s, ds, topic)
	if callerSlots {
		sub.callerSlots = make([]*callerSlot, s.cfg.Concurrency)
		for i := range sub.callerSlots {
			sub.callerSlots[i] = &callerSlot{s: sub, sb: sub.newSettleBuf()}
		}
	}
	sub.start(ctx)
	s.subs = append(s.subs, sub)
	return sub, nil
}

// Close stops every subscription: it stops reading, waits for the slots,
// returns what it read and never handed out to the broker uncounted,
// returns nacked entries still waiting for their delay, flushes the acks
// and nacks made so far and closes the driver's subscriptions. Messages
// handed out and neither acked nor nacked stay pending for this member
// (or go back to the queue). It is idempotent: a Close while another is
// on its way waits for that one to finish and returns nil, so that the
// caller may close what the subscriber stands on (its transport's
// connections) once any Close returned.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.closeEnd
		return nil
	}
	s.closed = true
	subs := s.subs
	s.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(subs))
	for i, sub := range subs {
		wg.Go(func() { errs[i] = sub.close() })
	}
	wg.Wait()
	if s.opts.OnClose != nil {
		s.opts.OnClose()
	}
	close(s.closeEnd)
	return errors.Join(errs...)
}
