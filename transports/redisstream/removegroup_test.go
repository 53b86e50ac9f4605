package redisstream

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/transports"
)

// A listener that has read nothing, with its dedup records in another
// store than the transport's Redis (so it holds no process-name lease
// there), is seen by RemoveGroup through its subscription's liveness key:
// Redis 7.0 shows no consumer for empty reads. Once it closed, the group
// goes without --force.
func TestRemoveGroupSeesAQuietListener(t *testing.T) {
	raw := testURL(t, "")
	tr := openTransport(t, raw)
	ctx := context.Background()
	b, err := bus.New(bus.Config{Service: "svc", Process: "quiet", Transport: raw, Idempotency: "memory://"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := bus.Listen(b, bus.NewEvent[int]("orders", "archived"), "archive", func(context.Context, bus.Delivery[int]) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var last error
	eventually(t, 20*time.Second, "the quiet group refused as in use", func() bool {
		last = tr.RemoveGroup(ctx, "svc-archive", transports.RemoveGroupOptions{})
		return errors.Is(last, transports.ErrGroupInUse)
	})
	if !strings.Contains(last.Error(), "orders.archived/quiet") {
		t.Errorf("the refusal does not name the subscription: %v", last)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tr.RemoveGroup(ctx, "svc-archive", transports.RemoveGroupOptions{}); err != nil {
		t.Fatalf("RemoveGroup after the listener closed: %v", err)
	}
	if n, err := tr.client.Exists(ctx, tr.liveKeyPrefix("svc-archive")+"orders.archived/quiet").Result(); err != nil || n != 0 {
		t.Errorf("liveness key after Close: EXISTS = %d, %v", n, err)
	}
}
