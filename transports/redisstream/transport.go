package redisstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/idempotency/redisstore"
	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/engine"
)

func init() {
	transports.Register("redis", open)
	transports.Register("rediss", open)
}

// Transport is the Redis Streams transport. It implements
// transports.Transport, transports.DeadLetterStore and
// transports.ConsumerRemover. Make one by opening a redis:// URL through
// the bus (or transports.Open), or with New.
type Transport struct {
	client    redis.UniversalClient
	ownClient bool
	// clientClosed is set by the first of Close and DropConnections to
	// close an owned client.
	clientClosed atomic.Bool
	// readers are the subscriptions' reading clients (DropConnections).
	readers readerSet
	opts    Options
	log     *slog.Logger
	// newReader opens a one-connection client for a subscription's blocking
	// reads; nil on a Cluster.
	newReader func(onID func(int64)) redis.UniversalClient

	pub *publisher
	// mover moves due scheduled events into their streams (schedule.go);
	// nil on Redis Cluster.
	mover *mover

	subs transports.Subscribers[*engine.Subscriber]
	// live refreshes the liveness keys of the open subscriptions.
	live *liveness

	// dedup is the store IdempotencyStore made, nil before: acks go
	// through its pipelines, behind the commits it deferred.
	dedup     atomic.Pointer[redisstore.Store]
	dedupOnce sync.Once
}

var (
	_ transports.Transport       = (*Transport)(nil)
	_ transports.DeadLetterStore = (*Transport)(nil)
	_ transports.ConsumerRemover = (*Transport)(nil)
)

func open(ctx context.Context, u *url.URL, o transports.OpenOptions) (transports.Transport, error) {
	cfg, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	cfg.opts.NoScheduleMover = cfg.opts.NoScheduleMover || o.NoScheduleMover
	cfg.opts.KeepLimits = cfg.opts.KeepLimits || o.KeepLimits
	client := cfg.newClient()
	t, err := newTransport(ctx, client, cfg.opts, cfg.readerFactory(), o.Logger)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	t.ownClient = true
	return t, nil
}

// New returns a transport on an existing client, which it does not close.
// Start opts from DefaultOptions: zero fields other than Block,
// ConsumerIdle, PublishBatch and PublishPipes (which get their defaults)
// mean what they say (an empty Prefix, no trimming). It checks that the
// server is Redis 6.2 or newer. Blocking reads go through client and end
// by Options.Block (1s when zero), since New cannot open dedicated
// connections on an arbitrary client.
func New(ctx context.Context, client redis.UniversalClient, opts Options, logger *slog.Logger) (*Transport, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: redisstream.New: nil client", transports.ErrInvalidConfig)
	}
	if opts.Block == 0 {
		opts.Block = DefaultClusterBlock
	}
	return newTransport(ctx, client, opts.withDefaults(), nil, logger)
}

func newTransport(ctx context.Context, client redis.UniversalClient, opts Options, newReader func(func(int64)) redis.UniversalClient, logger *slog.Logger) (*Transport, error) {
	if logger == nil {
		logger = slog.Default()
	}
	addRedisLogTarget(logger) // go-redis's own log lines go to this logger (redislog.go)
	if err := checkVersion(ctx, client); err != nil {
		removeRedisLogTarget(logger)
		return nil, err
	}
	t := &Transport{
		client:    client,
		opts:      opts,
		log:       logger,
		newReader: newReader,
	}
	t.pub = newPublisher(client, opts)
	t.live = newLiveness(client, logger)
	t.mover = startMover(t)
	return t, nil
}

// Client returns the go-redis client the transport uses, for inspection tools.
func (t *Transport) Client() redis.UniversalClient { return t.client }

// Options returns the options the transport runs with.
func (t *Transport) Options() Options { return t.opts }

// StreamKey returns the key of the stream of event: "{prefix}{event}".
func (t *Transport) StreamKey(event string) string { return t.opts.Prefix + event }

// DeadLetterKey returns the key of the dead-letter stream of group:
// "{prefix}dead:{group}".
func (t *Transport) DeadLetterKey(group string) string { return t.opts.Prefix + "dead:" + group }

// Publish appends each message to the stream of topic (XADD with MAXLEN ~)
// and returns once Redis replied to every XADD: a nil error means every
// message is in the stream. Concurrent calls share pipelines.
func (t *Transport) Publish(topic string, msgs ...*message.Message) error {
	return t.pub.publish(t.StreamKey(topic), t.opts.maxLen(topic), msgs)
}

// NewSubscriber returns a subscriber that reads as consumer cfg.Consumer of
// consumer group cfg.Group.
func (t *Transport) NewSubscriber(cfg transports.SubscriberConfig) (message.Subscriber, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var s *engine.Subscriber
	s, err := engine.New(redisDriver{t}, cfg, engine.Options{
		Logger: t.log, ReceiveWait: t.opts.Block, ClaimInterval: t.opts.ClaimInterval,
		OnClose: func() { t.subs.Remove(s) },
	})
	if err != nil {
		return nil, err
	}
	if err := t.subs.Add(s); err != nil {
		return nil, err
	}
	return s, nil
}

// Close closes every subscriber still open (flushing their
// acknowledgements), waits for Publish calls in flight, and closes the
// client when the transport opened it. It is idempotent.
func (t *Transport) Close() error {
	first, err := t.subs.CloseAll()
	if !first {
		return nil
	}
	errs := []error{err}
	defer removeRedisLogTarget(t.log)
	t.mover.stop()
	t.live.close()
	t.pub.close()
	if t.ownClient && !t.clientClosed.Swap(true) {
		errs = append(errs, t.client.Close())
	}
	return errors.Join(errs...)
}
