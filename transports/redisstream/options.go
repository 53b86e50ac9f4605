package redisstream

import (
	"context"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/internal/redisurl"
	"github.com/busline/busline/internal/urlopts"
	"github.com/busline/busline/transports"
)

// Defaults of the Busline options in a redis:// URL.
const (
	DefaultPrefix          = "busline:"
	DefaultMaxLen          = 100_000
	DefaultBlock           = 5 * time.Second
	DefaultClusterBlock    = time.Second
	DefaultConsumerIdle    = time.Hour
	DefaultPublishBatch    = 256
	DefaultPublishPipes    = 1
	maxBatch               = 1000
	defaultReadAhead       = 2 // times the listener's Concurrency
	maxConsumerCheckPeriod = 10 * time.Minute
)

// Options are the Busline settings of a Redis transport. Each has a URL
// query parameter of the same name in snake case; the rest of the query
// goes to go-redis (dial_timeout, read_timeout, pool_size, ...).
type Options struct {
	// Prefix starts every key: streams "{Prefix}{event}", dead letters
	// "{Prefix}dead:{group}". URL: prefix. Default "busline:".
	Prefix string
	// MaxLen trims each event stream to about this many entries
	// (XADD MAXLEN ~). 0 keeps every entry. URL: maxlen. Default 100000.
	MaxLen int64
	// MaxLenByEvent overrides MaxLen for single events.
	// URL: maxlen.{event}=N, e.g. maxlen.competitor_prices.changed=5000.
	MaxLenByEvent map[string]int64
	// DeadMaxLen trims dead-letter streams (XADD MAXLEN ~). 0, the default,
	// keeps every dead letter until it is replayed or purged. URL: dead_maxlen.
	DeadMaxLen int64
	// Batch caps the entries one XREADGROUP, XPENDING or XAUTOCLAIM asks
	// for. 0 means 1000. URL: batch.
	Batch int
	// ReadAhead is how many entries, beyond its free slots, a listener
	// reads while entries are waiting, to hold for the next slot that
	// frees: fewer, larger reads. Entries read ahead are left uncounted
	// until a handler gets them, so a crash counts no attempt for them.
	// A read into an empty stream asks only for the free slots. 0 means
	// twice the listener's Concurrency; a negative value reads only for
	// free slots (URL: -1). At most Batch. No read ahead on a Cluster or on a client given to New.
	// URL: read_ahead.
	ReadAhead int
	// Block is the longest a read waits for new entries (XREADGROUP BLOCK).
	// A standalone or Sentinel client interrupts the wait at once on
	// close (CLIENT UNBLOCK); on a Cluster, close waits for it to end.
	// URL: block. Default 5s (1s on a Cluster).
	Block time.Duration
	// ClaimInterval is how often a subscriber looks for entries idle longer
	// than AckTimeout (XAUTOCLAIM). 0 uses AckTimeout/4, between 20ms and
	// 30s. URL: claim_interval.
	ClaimInterval time.Duration
	// ConsumerIdle is how long a consumer must have been idle before a
	// subscriber of its group deletes it, which it does only when the
	// consumer holds no pending entry. A negative value never deletes
	// consumers. URL: consumer_idle. Default 1h.
	ConsumerIdle time.Duration
	// PublishBatch is the most XADDs of concurrent Publish calls sent in one
	// pipeline. URL: publish_batch. Default 256.
	PublishBatch int
	// PublishPipes is how many pipelines of Publish calls may be in flight
	// at once. URL: publish_pipes. Default 1: one pipeline in flight
	// gathers every XADD queued meanwhile, which costs the least CPU.
	// The messages of one Publish call (bus.FireBatch) always go through
	// one pipe, in order.
	PublishPipes int
	// NoScheduleMover keeps this transport from moving due scheduled
	// events into their streams (it still schedules them): for processes
	// that only fire, when others run movers. URL: no_schedule_mover=true.
	NoScheduleMover bool
	// KeepLimits appends without trimming (transports.OpenOptions.KeepLimits:
	// a tool leaves the streams as the services trim them).
	KeepLimits bool
}

// DefaultOptions returns the options a redis:// URL without Busline
// parameters gets.
func DefaultOptions() Options {
	return Options{
		Prefix:       DefaultPrefix,
		MaxLen:       DefaultMaxLen,
		ConsumerIdle: DefaultConsumerIdle,
		PublishBatch: DefaultPublishBatch,
		PublishPipes: DefaultPublishPipes,
	}
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.PublishBatch <= 0 {
		o.PublishBatch = d.PublishBatch
	}
	if o.PublishPipes <= 0 {
		o.PublishPipes = d.PublishPipes
	}
	if o.ConsumerIdle == 0 {
		o.ConsumerIdle = d.ConsumerIdle
	}
	if o.Batch > maxBatch {
		o.Batch = maxBatch
	}
	return o
}

// maxLen is the trimming threshold of one event stream.
func (o Options) maxLen(event string) int64 {
	if o.KeepLimits {
		return 0
	}
	if n, ok := o.MaxLenByEvent[event]; ok {
		return n
	}
	return o.MaxLen
}

// clientKind says which go-redis client a URL asks for.
type clientKind int

const (
	standalone = clientKind(redisurl.Standalone)
	cluster    = clientKind(redisurl.Cluster)
	failover   = clientKind(redisurl.Failover)
)

// OptionNames are the query parameters of a redis:// URL that Busline
// reads itself (besides the per-event maxlen.{event}); the rest of the
// query goes to go-redis. For tools that hand the same URL to another
// Redis client.
var OptionNames = []string{
	"prefix", "maxlen", "dead_maxlen", "batch", "read_ahead", "block", "claim_interval",
	"consumer_idle", "publish_batch", "publish_pipes", "no_schedule_mover",
}

// config is a parsed URL: the Busline options and the go-redis options of
// the client kind the URL asks for.
type config struct {
	opts     Options
	kind     clientKind
	single   *redis.Options
	clusterO *redis.ClusterOptions
	failO    *redis.FailoverOptions
}

// parseURL splits a redis:// or rediss:// URL into Busline options and
// go-redis options. cluster=true, or more than one addr=, asks for a Cluster
// client; master_name= asks for a Sentinel (failover) client.
func parseURL(u *url.URL) (config, error) {
	c := config{opts: DefaultOptions()}
	q := urlopts.Query{Transport: "redis", Values: u.Query()}
	if v, ok := q.Take("prefix"); ok {
		c.opts.Prefix = v
	}
	if err := urlopts.All(
		func() error { return q.Int("maxlen", 0, urlopts.Into(&c.opts.MaxLen)) },
		func() error { return q.Int("dead_maxlen", 0, urlopts.Into(&c.opts.DeadMaxLen)) },
		func() error { return q.Int("batch", 0, urlopts.Into(&c.opts.Batch)) },
		func() error { return q.Int("read_ahead", -1, urlopts.Into(&c.opts.ReadAhead)) },
		func() error { return q.Int("publish_batch", 0, urlopts.Into(&c.opts.PublishBatch)) },
		func() error { return q.Int("publish_pipes", 0, urlopts.Into(&c.opts.PublishPipes)) },
		func() error { return q.Duration("block", urlopts.NonNegative, urlopts.IntoDuration(&c.opts.Block)) },
		func() error {
			return q.Duration("claim_interval", urlopts.NonNegative, urlopts.IntoDuration(&c.opts.ClaimInterval))
		},
		func() error {
			return q.Duration("consumer_idle", urlopts.Any, urlopts.IntoDuration(&c.opts.ConsumerIdle))
		},
		func() error { return q.MaxLenByEvent(&c.opts.MaxLenByEvent) },
		func() error { return q.Bool("no_schedule_mover", func(b bool) { c.opts.NoScheduleMover = b }) },
	); err != nil {
		return config{}, err
	}
	c.opts = c.opts.withDefaults()

	rest := *u
	rest.RawQuery = q.Values.Encode()
	rc, err := redisurl.Parse(&rest)
	if err != nil {
		return config{}, err
	}
	c.kind = clientKind(rc.Kind)
	c.single, c.clusterO, c.failO = rc.Single, rc.Cluster, rc.Failover
	if c.opts.Block == 0 {
		c.opts.Block = DefaultBlock
		if c.kind == cluster {
			c.opts.Block = DefaultClusterBlock
		}
	}
	return c, nil
}

// newClient opens the shared client of a transport.
func (c config) newClient() redis.UniversalClient {
	return redisurl.Config{Kind: redisurl.Kind(c.kind), Single: c.single, Cluster: c.clusterO, Failover: c.failO}.NewClient()
}

// readerFactory returns a function that opens a client of one connection,
// which never retries a command by itself,
// for a subscription's blocking reads and reports that connection's client
// ID to onID each time it (re)connects, so that the read can be interrupted
// with CLIENT UNBLOCK. It returns nil for a Cluster, whose blocking reads
// go through the shared client and end by timeout.
func (c config) readerFactory() func(onID func(int64)) redis.UniversalClient {
	hook := func(prev func(ctx context.Context, cn *redis.Conn) error, onID func(int64)) func(ctx context.Context, cn *redis.Conn) error {
		return func(ctx context.Context, cn *redis.Conn) error {
			if prev != nil {
				if err := prev(ctx, cn); err != nil {
					return err
				}
			}
			id, err := cn.ClientID(ctx).Result()
			if err != nil {
				return err
			}
			onID(id)
			return nil
		}
	}
	switch c.kind {
	case standalone:
		return func(onID func(int64)) redis.UniversalClient {
			o := *c.single
			o.PoolSize, o.MinIdleConns, o.MaxIdleConns, o.MaxActiveConns, o.PipelinePoolSize = 1, 0, 1, 1, -1
			// No retry of a read whose reply was lost: the entries it took
			// are pending for this consumer, and the engine must hear of the
			// broken read to read them at once (a retried XREADGROUP > would
			// return other entries and leave those for AckTimeout).
			o.MaxRetries = -1
			o.OnConnect = hook(o.OnConnect, onID)
			return redis.NewClient(&o)
		}
	case failover:
		return func(onID func(int64)) redis.UniversalClient {
			o := *c.failO
			o.PoolSize, o.MinIdleConns, o.MaxIdleConns, o.MaxActiveConns, o.PipelinePoolSize = 1, 0, 1, 1, -1
			o.MaxRetries = -1 // see above
			o.OnConnect = hook(o.OnConnect, onID)
			return redis.NewFailoverClient(&o)
		}
	default:
		return nil
	}
}

// parseURLString parses a raw redis:// URL with parseURL.
func parseURLString(raw string) (config, error) {
	u, err := transports.ParseURL(raw)
	if err != nil {
		return config{}, err
	}
	return parseURL(u)
}

// readAheadFor returns ReadAhead for a listener of the given concurrency.
func (o Options) readAheadFor(concurrency int) int {
	switch {
	case o.ReadAhead < 0:
		return 0
	case o.ReadAhead == 0:
		return defaultReadAhead * concurrency
	}
	return o.ReadAhead
}
