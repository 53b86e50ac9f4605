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
	b := startArchiver(t, raw, "quiet")
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
	if keys, err := tr.client.Keys(ctx, tr.liveKeyPrefix("svc-archive")+"*").Result(); err != nil || len(keys) != 0 {
		t.Fatalf("liveness keys after Close: %v, %v; want none", keys, err)
	}
	err := tr.RemoveGroup(ctx, "svc-archive", transports.RemoveGroupOptions{})
	info, _ := tr.client.Info(ctx, "server").Result()
	if versionAtLeast(infoField(info, "redis_version"), 7, 2) {
		// From 7.2 an empty read counts as the consumer's activity: the
		// stopped listener's consumer looks in use for a minute.
		if err != nil && !strings.Contains(err.Error(), `consumer "quiet"`) {
			t.Fatalf("RemoveGroup after the listener closed: %v; want nil or its consumer's recent read", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("RemoveGroup after the listener closed: %v", err)
	}
}

// Two open subscriptions of one name in one group (two buses of one
// process name in one program) keep a liveness key each: closing one
// leaves the other's.
func TestLivenessKeyPerSubscription(t *testing.T) {
	raw := testURL(t, "")
	tr := openTransport(t, raw)
	ctx := context.Background()
	prefix := tr.liveKeyPrefix("svc-archive")
	var buses []*bus.Bus
	for range 2 {
		buses = append(buses, startArchiver(t, raw, "same"))
	}
	keys := func() []string {
		k, err := tr.client.Keys(ctx, prefix+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	if k := keys(); len(k) != 2 {
		t.Fatalf("liveness keys of two open subscriptions: %v; want 2", k)
	}
	if err := buses[0].Close(); err != nil {
		t.Fatal(err)
	}
	if k := keys(); len(k) != 1 {
		t.Fatalf("liveness keys after one closed: %v; want the other's", k)
	}
	if err := tr.RemoveGroup(ctx, "svc-archive", transports.RemoveGroupOptions{}); !errors.Is(err, transports.ErrGroupInUse) {
		t.Fatalf("RemoveGroup with one subscription open: %v; want ErrGroupInUse", err)
	}
}

// startArchiver starts a bus of service svc, with its dedup records in
// memory (so it holds no name lease in Redis), whose listener "archive"
// waits for orders.archived events.
func startArchiver(t *testing.T, raw, process string) *bus.Bus {
	t.Helper()
	b, err := bus.New(bus.Config{Service: "svc", Process: process, Transport: raw, Idempotency: "memory://"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := bus.Listen(b, bus.NewEvent[int]("orders", "archived"), "archive", func(context.Context, bus.Delivery[int]) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return b
}

// A running listener that has read nothing yet is a live member of its
// group in Inspect, although Redis lists no consumer for it until it
// reads; after its bus closes it is no longer live.
func TestInspectShowsAQuietListenerLive(t *testing.T) {
	raw := testURL(t, "")
	tr := openTransport(t, raw)
	ctx := context.Background()
	b := startArchiver(t, raw, "quiet-1")
	member := func() (transports.GroupInfo, bool) {
		res, err := tr.Inspect(ctx, transports.InspectOptions{Groups: []string{"svc-archive"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range res.Groups {
			if g.Group == "svc-archive" && g.Event == "orders.archived" {
				return g, true
			}
		}
		return transports.GroupInfo{}, false
	}
	g, ok := member()
	if !ok {
		t.Fatal("no group svc-archive in Inspect")
	}
	if g.Consumers != 1 || len(g.Members) != 1 || g.Members[0].Name != "quiet-1" || !g.Members[0].Live {
		t.Fatalf("group of a running quiet listener: %d consumers, members %+v; want quiet-1, live", g.Consumers, g.Members)
	}
	// Once it has read, Redis lists it too: still one member, live.
	if _, err := bus.Fire(ctx, b, bus.NewEvent[int]("orders", "archived"), 1); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the listener listed by Redis", func() bool {
		n, err := tr.client.XInfoConsumers(ctx, tr.StreamKey("orders.archived"), "svc-archive").Result()
		return err == nil && len(n) == 1
	})
	if g, _ = member(); g.Consumers != 1 || len(g.Members) != 1 || !g.Members[0].Live || g.Members[0].Idle == transports.Unknown {
		t.Fatalf("group after a read: %d consumers, members %+v; want quiet-1 once, live, with its idle time", g.Consumers, g.Members)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	g, _ = member()
	for _, m := range g.Members {
		if m.Live {
			t.Fatalf("member %+v live after its bus closed", m)
		}
	}
}

// Removing a group deletes its records in the transport's own dedup
// store, and only its: a group made again under the same name handles
// an event ID it had handled before.
func TestRemoveGroupForgetsItsDedupRecords(t *testing.T) {
	raw := testURL(t, "")
	tr := openTransport(t, raw)
	ctx := context.Background()
	b, err := bus.New(bus.Config{Service: "svc", Process: "p1", Transport: raw}) // dedup in this Redis
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ev := bus.NewEvent[int]("orders", "archived")
	handled := make(chan struct{}, 4)
	for _, l := range []string{"archive", "audit"} {
		if err := bus.Listen(b, ev, l, func(context.Context, bus.Delivery[int]) error { handled <- struct{}{}; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.Fire(ctx, b, ev, 1); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case <-handled:
		case <-time.After(20 * time.Second):
			t.Fatal("the event was not handled by both listeners")
		}
	}
	records := func(group string) []string {
		var err error
		keys := tr.scanAll(ctx, tr.dedupPrefix()+group+":", &err)
		if err != nil {
			t.Fatal(err)
		}
		return keys
	}
	eventually(t, 10*time.Second, "both groups' dedup records", func() bool {
		return len(records("svc-archive")) == 1 && len(records("svc-audit")) == 1
	})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tr.RemoveGroup(ctx, "svc-archive", transports.RemoveGroupOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if k := records("svc-archive"); len(k) != 0 {
		t.Errorf("dedup records of the removed group: %v; want none", k)
	}
	if k := records("svc-audit"); len(k) != 1 {
		t.Errorf("dedup records of the other group: %v; want its one", k)
	}
	// Records a removal of an older version left behind go with the
	// next removal, though the group itself is gone.
	stray := tr.dedupPrefix() + "svc-gone:01a2392a-ea2e-7878-9a48-1d83ff5e1480"
	if err := tr.client.Set(ctx, stray, "done", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if err := tr.RemoveGroup(ctx, "svc-gone", transports.RemoveGroupOptions{}); !errors.Is(err, transports.ErrNotFound) {
		t.Errorf("RemoveGroup of a group gone: %v; want ErrNotFound", err)
	}
	if n, err := tr.client.Exists(ctx, stray).Result(); err != nil || n != 0 {
		t.Errorf("a gone group's dedup record after RemoveGroup: exists %d, %v; want deleted", n, err)
	}
}
