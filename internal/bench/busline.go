package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/busline/busline/bus"
	_ "github.com/busline/busline/transports/all" // every scheme bench accepts
)

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
	bs, err := bus.New(bus.Config{
		Service:   "bench",
		Process:   "bench",
		Transport: b.buslineURL(),
		// The chain the bars name: dedup in memory, as Watermill's side has none.
		Idempotency: "memory://",
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
	return measure(ctx, cfg, buslineName, rec, func(ctx context.Context) error {
		_, err := bus.Fire(ctx, bs, event, p)
		return err
	})
}
