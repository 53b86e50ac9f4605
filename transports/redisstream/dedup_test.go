package redisstream

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/bus"
)

// With a redis:// transport and no Config.Idempotency, the bus dedups in
// the same Redis: the done mark of a handled event is a key under
// "{prefix}dedup:", visible to every process.
func TestBusDefaultsToRedisDedup(t *testing.T) {
	raw := testURL(t, "")
	u := openTransport(t, raw)
	prefix := u.Options().Prefix
	b, err := bus.New(bus.Config{Service: "svc", Process: "p1", Transport: raw, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ev := bus.NewEvent[int]("dedup_default", "fired")
	done := make(chan string, 1)
	if err := bus.Listen(b, ev, "l", func(_ context.Context, d bus.Delivery[int]) error {
		done <- d.ID
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	id, err := bus.Fire(ctx, b, ev, 1)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("not handled")
	}
	key := prefix + "dedup:svc-l:" + id
	c := redis.NewClient(&redis.Options{Addr: testAddr()})
	defer c.Close()
	for {
		n, err := c.Exists(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no dedup key %s in Redis", key)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
