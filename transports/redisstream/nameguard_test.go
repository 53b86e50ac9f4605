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
	second := start(&secondLogs)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("first process's logs:\n%s\nsecond process's logs:\n%s", firstLogs.String(), secondLogs.String())
		}
	})
	// Start takes the name before it returns, so the second process is
	// the one expected to report; on a machine slow enough for the first
	// one's check to fail, the roles swap, which is as correct.
	const reported = "another live process uses this process name"
	eventually(t, 60*time.Second, "one process reports the other", func() bool {
		return strings.Contains(secondLogs.String(), reported) || strings.Contains(firstLogs.String(), reported)
	})
	holder, reporterLogs, holderLogs := first, &secondLogs, &firstLogs
	if !strings.Contains(secondLogs.String(), reported) {
		t.Logf("the first process reported the second (its first check did not take the name): %s", firstLogs.String())
		holder, reporterLogs, holderLogs = second, &firstLogs, &secondLogs
	}
	if strings.Contains(holderLogs.String(), "level=ERROR") {
		t.Errorf("the name's holder logged an error too: %s", holderLogs.String())
	}
	c := redis.NewClient(&redis.Options{Addr: testAddr()})
	defer c.Close()
	key := prefix + "dedup:busline.process:svc-l/same"
	if n, err := c.Exists(context.Background(), key).Result(); err != nil || n != 1 {
		t.Fatalf("EXISTS %s = %d, %v; want the name's lease", key, n, err)
	}
	if err := holder.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the reporting process takes the name", func() bool {
		return strings.Contains(reporterLogs.String(), "the other live process with this process name is gone")
	})
}
