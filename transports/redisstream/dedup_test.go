package redisstream

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
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

// The bus's default store defers commits and the transport acks behind
// them: while an event's commit cannot be applied (here its key was made a
// hash, so the commit script fails) its entry stays pending, and once the
// key is repaired the retried ack sends the commit first.
func TestDefaultDedupAcksAfterCommit(t *testing.T) {
	raw := testURL(t, "")
	u := openTransport(t, raw)
	s1, _ := u.IdempotencyStore(context.Background())
	if s2, _ := u.IdempotencyStore(context.Background()); s2 != s1 {
		t.Fatal("IdempotencyStore made a second store: acks go through one only")
	}
	prefix := u.Options().Prefix
	c := redis.NewClient(&redis.Options{Addr: testAddr()})
	defer c.Close()
	b, err := bus.New(bus.Config{Service: "svc", Process: "p1", Transport: raw, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ev := bus.NewEvent[int]("dedup_order", "fired")
	handled := make(chan string, 1)
	if err := bus.Listen(b, ev, "l", func(ctx context.Context, d bus.Delivery[int]) error {
		key := prefix + "dedup:svc-l:" + d.ID
		c.Del(ctx, key)
		c.HSet(ctx, key, "f", "v")
		handled <- key
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	failedBefore := failedCommits(t, c)
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.Fire(ctx, b, ev, 1); err != nil {
		t.Fatal(err)
	}
	var key string
	select {
	case key = <-handled:
	case <-ctx.Done():
		t.Fatal("not handled")
	}
	stream := u.StreamKey(ev.Name())
	pending := func() int64 {
		p, err := c.XPending(ctx, stream, "svc-l").Result()
		if err != nil {
			t.Fatal(err)
		}
		return p.Count
	}
	// The deferred commit failed, and so did the one an ack attempt sent
	// again: the entry must still be pending.
	waitFor(ctx, t, "an ack attempt to send the failed commit again", func() bool {
		if n := pending(); n != 1 {
			t.Fatalf("%d entries pending while the commit fails, want 1", n)
		}
		return failedCommits(t, c) >= failedBefore+2
	})
	if n := pending(); n != 1 {
		t.Fatalf("%d entries pending while the commit fails, want 1", n)
	}
	c.Del(ctx, key)
	waitFor(ctx, t, "the entry to be acked", func() bool { return pending() == 0 })
	if v, _ := c.Get(ctx, key).Result(); v != "done" {
		t.Fatalf("%s = %q with its entry acked, want done", key, v)
	}
}

// failedCommits is how many EVALSHA calls Redis saw fail.
func failedCommits(t *testing.T, c *redis.Client) int {
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(info, "cmdstat_evalsha:")
	if !ok {
		return 0
	}
	_, rest, ok = strings.Cut(rest, "failed_calls=")
	if !ok {
		t.Skip("Redis reports no failed_calls (before 6.2)")
	}
	end := strings.IndexAny(rest, ",\r\n")
	if end < 0 {
		end = len(rest)
	}
	n, _ := strconv.Atoi(rest[:end])
	return n
}

func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
