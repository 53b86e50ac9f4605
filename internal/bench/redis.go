package bench

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/ThreeDotsLabs/watermill"
	wrs "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/redisstream"
)

// redisBroker runs both sides on one Redis: Busline under the key prefix
// "{run}:", watermill-redisstream on the stream "{run}:watermill".
type redisBroker struct {
	u       *url.URL
	run     string
	options *redis.Options
}

func newRedisBroker(u *url.URL) (*redisBroker, error) {
	q := u.Query()
	for _, k := range []string{"cluster", "addr", "master_name"} {
		if q.Has(k) {
			return nil, fmt.Errorf("%w: bench runs on a single Redis server, not on a Cluster or through Sentinel (option %s)", transports.ErrUnsupported, k)
		}
	}
	for k := range q {
		if strings.HasPrefix(k, "maxlen.") {
			q.Del(k)
		}
	}
	for _, k := range redisstream.OptionNames { // Busline's, not go-redis's
		q.Del(k)
	}
	plain := *u
	plain.RawQuery = q.Encode()
	o, err := redis.ParseURL(plain.String())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", transports.ErrInvalidURL, err)
	}
	return &redisBroker{u: u, run: runName(), options: o}, nil
}

func (r *redisBroker) scheme() string { return r.u.Scheme }

func (r *redisBroker) prefix() string { return r.run + ":" }

// buslineURL puts every key under a fresh prefix and turns trimming off
// (unless the URL asks for it), as watermill-redisstream does not trim.
func (r *redisBroker) buslineURL() string {
	u := *r.u
	q := u.Query()
	q.Set("prefix", r.prefix())
	if !q.Has("maxlen") {
		q.Set("maxlen", "0")
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// cleanBusline deletes every key under the run's prefix: the event
// stream and any dead-letter stream.
func (r *redisBroker) cleanBusline(ctx context.Context) error {
	c := redis.NewClient(r.options)
	defer c.Close()
	return deleteKeys(ctx, c, r.prefix())
}

func deleteKeys(ctx context.Context, c *redis.Client, prefix string) error {
	it := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for it.Next(ctx) {
		keys = append(keys, it.Val())
	}
	if err := it.Err(); err != nil {
		return err
	}
	if len(keys) == 0 {
		return nil
	}
	return c.Del(ctx, keys...).Err()
}

func (r *redisBroker) runWatermill(ctx context.Context, cfg Config) (Side, error) {
	return r.withStream(ctx, "watermill", func(stream string) (Side, error) {
		// Publisher and subscriber each close their own client.
		pub, err := wrs.NewPublisher(wrs.PublisherConfig{Client: redis.NewClient(r.options)}, watermill.NopLogger{})
		if err != nil {
			return Side{}, fmt.Errorf("bench: watermill-redisstream publisher: %w", err)
		}
		defer pub.Close()
		sub, err := wrs.NewSubscriber(wrs.SubscriberConfig{Client: redis.NewClient(r.options), ConsumerGroup: "bench-sink"}, watermill.NopLogger{})
		if err != nil {
			return Side{}, fmt.Errorf("bench: watermill-redisstream subscriber: %w", err)
		}
		defer sub.Close()
		return runRouter(ctx, cfg, "watermill-redisstream (defaults)", stream, pub, sub)
	})
}
