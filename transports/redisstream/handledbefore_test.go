package redisstream

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/internal/syncbuf"
)

// An event delivered more than MaxDeliveries times whose handling the
// group's idempotency record shows done (its acknowledgements were lost,
// such as when a process died between its handler's commit and the XACK)
// is acknowledged, not dead-lettered, and its handler does not run again:
// the bus wires the Redis store into the dead-letter middleware.
func TestEventOverMaxDeliveriesHandledBeforeIsAcked(t *testing.T) {
	raw := testURL(t, "")
	tr := openTransport(t, raw)
	prefix := tr.Options().Prefix
	ctx := context.Background()
	event := bus.NewEvent[int]("ledger", "posted")
	var calls atomic.Int32
	var logs syncbuf.Buffer
	newBus := func(process string) *bus.Bus {
		t.Helper()
		b, err := bus.New(bus.Config{Service: "svc", Process: process, Transport: raw, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		if err := bus.Listen(b, event, "post", func(context.Context, bus.Delivery[int]) error { calls.Add(1); return nil },
			bus.WithMaxDeliveries(2), bus.WithAckTimeout(time.Second)); err != nil {
			t.Fatal(err)
		}
		return b
	}
	// The group exists before the event is fired.
	first := newBus("p1")
	if err := first.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	firer := newBus("firer")
	id, err := bus.Fire(ctx, firer, event, 7)
	if err != nil {
		t.Fatal(err)
	}

	// A consumer that died after three deliveries of the event, and the
	// group's record that a handler finished it.
	c := redis.NewClient(&redis.Options{Addr: testAddr()})
	defer c.Close()
	stream, group := tr.StreamKey(event.Name()), "svc-post"
	read, err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: "ghost", Streams: []string{stream, ">"}, Count: 1}).Result()
	if err != nil || len(read) != 1 || len(read[0].Messages) != 1 {
		t.Fatalf("XREADGROUP = %v, %v", read, err)
	}
	entry := read[0].Messages[0].ID
	for range 2 {
		if err := c.XClaim(ctx, &redis.XClaimArgs{Stream: stream, Group: group, Consumer: "ghost", Messages: []string{entry}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Set(ctx, prefix+"dedup:"+group+":"+id, "done", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}

	second := newBus("p2")
	if err := second.Start(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the event acknowledged", func() bool {
		p, err := c.XPending(ctx, stream, group).Result()
		return err == nil && p.Count == 0
	})
	if n := calls.Load(); n != 0 {
		t.Errorf("the handler ran %d times for an event handled before", n)
	}
	if !strings.Contains(logs.String(), "was handled before") {
		t.Errorf("no log of the event handled before: %s", logs.String())
	}
	dead, err := tr.DeadLetters(ctx, group, 10)
	if err != nil || len(dead) != 0 {
		t.Fatalf("dead letters = %v, %v; want none", dead, err)
	}
}
