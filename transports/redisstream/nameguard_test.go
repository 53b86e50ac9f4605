package redisstream

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/internal/syncbuf"
)

// Two live processes started with one process name share a Redis
// consumer and take over each other's idempotency leases: the second one
// reports it (the name's lease in the Redis store is renewed by the
// first). The first one's lease is gone once it closes.
func TestSecondLiveProcessOfOneNameIsReported(t *testing.T) {
	raw := testURL(t, "")
	prefix := openTransport(t, raw).Options().Prefix
	start := func(logs io.Writer) *bus.Bus {
		t.Helper()
		b, err := bus.New(bus.Config{Service: "svc", Process: "same", Transport: raw, Logger: slog.New(slog.NewTextHandler(logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		if err := bus.Listen(b, bus.NewEvent[int]("names", "checked"), "l", func(context.Context, bus.Delivery[int]) error { return nil }); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := b.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return b
	}
	var firstLogs, secondLogs syncbuf.Buffer
	first := start(&firstLogs)
	start(&secondLogs)
	eventually(t, 60*time.Second, "the second process reports the first", func() bool {
		return strings.Contains(secondLogs.String(), "another live process uses this process name")
	})
	if strings.Contains(firstLogs.String(), "level=ERROR") {
		t.Errorf("the first process logged an error: %s", firstLogs.String())
	}
	c := redis.NewClient(&redis.Options{Addr: testAddr()})
	defer c.Close()
	key := prefix + "dedup:busline.process:svc-l/same"
	if n, err := c.Exists(context.Background(), key).Result(); err != nil || n != 1 {
		t.Fatalf("EXISTS %s = %d, %v; want the name's lease", key, n, err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the second process takes the name", func() bool {
		return strings.Contains(secondLogs.String(), "the other live process with this process name is gone")
	})
}
