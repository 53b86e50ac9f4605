package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/bus"
	_ "github.com/busline/busline/idempotency/redisstore" // redis:// dedup stores
	"github.com/busline/busline/transports"
	_ "github.com/busline/busline/transports/all" // every scheme bench accepts
)

// dedupStore returns the Idempotency URL of the Busline side for raw (""
// is the bus default: the same Redis on redis://, memory:// elsewhere) and
// a function that deletes what the side stored. The default store on
// redis:// keeps its keys under the transport's prefix, which the side's
// clean-up deletes.
func dedupStore(raw string) (string, func(context.Context) error, error) {
	nothing := func(context.Context) error { return nil }
	if raw == "" {
		return "", nothing, nil
	}
	u, err := transports.ParseURL(raw)
	if err != nil {
		return "", nil, err
	}
	switch u.Scheme {
	case "memory":
		return raw, nothing, nil
	case "redis", "rediss":
		prefix := runName() + ":dedup:"
		q := u.Query()
		q.Set("prefix", prefix)
		u.RawQuery = q.Encode()
		r, err := newRedisBroker(u)
		if err != nil {
			return "", nil, err
		}
		return u.String(), func(ctx context.Context) error {
			c := redis.NewClient(r.options)
			defer c.Close()
			return deleteKeys(ctx, c, prefix)
		}, nil
	}
	return "", nil, fmt.Errorf("%w: bench: idempotency store %s:// (want memory or redis)", ErrInvalidConfig, u.Scheme)
}

// event is the event both sides fire; on Watermill it is the topic suffix.
var event = bus.NewEvent[payload]("bench", "happened")

// buslineName labels the Busline side.
const buslineName = "busline (default chain)"

// runBusline fires through bus.Fire and handles with a listener running the
// default chain with concurrency cfg.Concurrency, then closes the bus and
// deletes what it created.
func runBusline(ctx context.Context, cfg Config, b broker) (side Side, err error) {
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if cerr := b.cleanBusline(cctx); cerr != nil {
			err = errors.Join(err, fmt.Errorf("bench: clean up the Busline side: %w", cerr))
		}
	}()
	store, cleanStore, err := dedupStore(cfg.Idempotency)
	if err != nil {
		return Side{}, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanTimeout)
		defer cancel()
		if cerr := cleanStore(cctx); cerr != nil {
			err = errors.Join(err, fmt.Errorf("bench: clean up the dedup store: %w", cerr))
		}
	}()
	bs, err := bus.New(bus.Config{
		Service:   "bench",
		Process:   "bench",
		Transport: b.buslineURL(),
		// What a user gets: the bus default dedup store (on redis:// the
		// same Redis), unless --idempotency names one.
		Idempotency: store,
		Logger:      slog.New(slog.DiscardHandler),
		Listener:    bus.ListenerOptions{Concurrency: cfg.Concurrency},
	})
	if err != nil {
		return Side{}, fmt.Errorf("bench: %w", err)
	}
	defer func() {
		if cerr := bs.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("bench: close the bus: %w", cerr))
		}
	}()
	rec := newRecorder(cfg.Events)
	if err := bus.Listen(bs, event, "sink", func(_ context.Context, d bus.Delivery[payload]) error {
		rec.record(d.FiredAt)
		return nil
	}); err != nil {
		return Side{}, fmt.Errorf("bench: %w", err)
	}
	if err := bs.Start(ctx); err != nil {
		return Side{}, fmt.Errorf("bench: start the bus: %w", err)
	}
	p := newPayload(cfg.Size)
	if cfg.CPUProfile != nil {
		if err := pprof.StartCPUProfile(cfg.CPUProfile); err != nil {
			return Side{}, fmt.Errorf("bench: CPU profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	name := buslineName
	if cfg.Idempotency != "" {
		name = fmt.Sprintf("busline (default chain, %s:// dedup store)", strings.SplitN(cfg.Idempotency, ":", 2)[0])
	}
	if cfg.FireBatch > 1 {
		name = strings.TrimSuffix(name, ")") + fmt.Sprintf(", FireBatch of %d)", cfg.FireBatch)
		batch := slices.Repeat([]payload{p}, cfg.FireBatch)
		return measureBatches(ctx, cfg, name, rec, cfg.FireBatch, func(ctx context.Context, n int) error {
			_, err := bus.FireBatch(ctx, bs, event, batch[:n])
			return err
		})
	}
	return measure(ctx, cfg, name, rec, func(ctx context.Context) error {
		_, err := bus.Fire(ctx, bs, event, p)
		return err
	})
}
