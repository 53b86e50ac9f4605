package storetest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/idempotency"
	"github.com/busline/busline/transports/memory"
)

type ping struct{ N int }

var pinged = bus.NewEvent[ping]("storetest", "pinged")

func runBus(t *testing.T, h Harness) {
	t.Run("DuplicateFiresRunOncePerGroup", func(t *testing.T) { testBusDuplicates(t, h) })
	t.Run("FailedFirstDeliveryIsRedelivered", func(t *testing.T) { testBusFailThenRetry(t, h) })
	t.Run("PerListenerRetentionAndOptOut", func(t *testing.T) { testBusListenerOptions(t, h) })
}

// broker returns a memory:// URL private to the test and its broker.
func broker(t testing.TB) (string, *memory.Broker) {
	name := "storetest-" + rand.Text()[:10]
	t.Cleanup(func() { memory.Forget(name) })
	return "memory://" + name, memory.Named(name, 0)
}

func newBus(t testing.TB, transport, store, process string) *bus.Bus {
	t.Helper()
	b, err := bus.New(bus.Config{
		Service: "storetest", Process: process, Transport: transport, Idempotency: store,
		Listener: bus.ListenerOptions{
			AckTimeout: 2 * time.Second,
			Retry: bus.RetryPolicy{Tries: 1, RedeliveryDelay: func(int) time.Duration {
				return 20 * time.Millisecond
			}},
		},
		ShutdownTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatalf("bus.New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// waitIdle waits until every fired event was acknowledged by every group.
func waitIdle(t testing.TB, br *memory.Broker, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		ch := br.Changed()
		if br.Idle() {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("events still unacknowledged after %v", within)
		}
	}
}

type runs struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *runs) add(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[key]++
	return r.n[key]
}

func (r *runs) get(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[key]
}

// testBusDuplicates fires every event twice with the same ID to a service
// with two listeners, run by two processes (one when the store is not
// shared): each listener handles each event once.
func testBusDuplicates(t *testing.T, h Harness) {
	transport, br := broker(t)
	storeURL := h.URL(t)
	procs := 1
	if h.Shared {
		procs = 2
	}
	var r runs
	buses := make([]*bus.Bus, procs)
	for i := range buses {
		b := newBus(t, transport, storeURL, fmt.Sprintf("p%d", i))
		for _, l := range []string{"audit", "notify"} {
			err := bus.Listen(b, pinged, l, func(ctx context.Context, d bus.Delivery[ping]) error {
				r.add(l + "/" + d.ID)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		buses[i] = b
	}
	const events = 20
	for n := range events {
		id := fmt.Sprintf("%s-ev-%d", t.Name(), n)
		for c := range 2 {
			if _, err := bus.Fire(context.Background(), buses[c%procs], pinged, ping{n}, bus.WithEventID(id)); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitIdle(t, br, 30*time.Second)
	for n := range events {
		id := fmt.Sprintf("%s-ev-%d", t.Name(), n)
		for _, l := range []string{"audit", "notify"} {
			if got := r.get(l + "/" + id); got != 1 {
				t.Errorf("listener %s handled event %d %d times, want 1", l, n, got)
			}
		}
	}
}

// testBusFailThenRetry: the first delivery fails, the transport delivers
// the event again and the handler runs; the event is then acknowledged.
func testBusFailThenRetry(t *testing.T, h Harness) {
	transport, br := broker(t)
	b := newBus(t, transport, h.URL(t), "p0")
	var r runs
	err := bus.Listen(b, pinged, "flaky", func(ctx context.Context, d bus.Delivery[ping]) error {
		if r.add(d.ID) == 1 {
			return errors.New("first attempt fails")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	id, err := bus.Fire(context.Background(), b, pinged, ping{1})
	if err != nil {
		t.Fatal(err)
	}
	waitIdle(t, br, 30*time.Second)
	if got := r.get(id); got != 2 {
		t.Fatalf("handler ran %d times, want 2 (the failed attempt and its redelivery)", got)
	}
}

// testBusListenerOptions: a listener's Retention bounds how long a done
// event is remembered; WithoutIdempotency turns dedup off for a listener.
func testBusListenerOptions(t *testing.T, h Harness) {
	transport, br := broker(t)
	storeURL := h.URL(t)
	b := newBus(t, transport, storeURL, "p0")
	var r runs
	listen := func(name string, opts ...bus.ListenOption) {
		err := bus.Listen(b, pinged, name, func(ctx context.Context, d bus.Delivery[ping]) error {
			r.add(name)
			return nil
		}, opts...)
		if err != nil {
			t.Fatal(err)
		}
	}
	listen("short", bus.WithRetention(300*time.Millisecond))
	listen("off", bus.WithoutIdempotency())
	listen("default")
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	fire := func() {
		t.Helper()
		if _, err := bus.Fire(context.Background(), b, pinged, ping{1}, bus.WithEventID("same-id")); err != nil {
			t.Fatal(err)
		}
		waitIdle(t, br, 30*time.Second)
	}
	fire()
	fire()
	if r.get("short") != 1 || r.get("off") != 2 || r.get("default") != 1 {
		t.Fatalf("after a duplicate: short %d, off %d, default %d runs; want 1, 2, 1", r.get("short"), r.get("off"), r.get("default"))
	}
	if !h.Shared {
		return // a memory:// URL opens a store of its own: nothing to observe
	}
	// Wait until the store forgot the short-retention listener's event.
	s := store(t, Harness{URL: func(testing.TB) string { return storeURL }})
	eventually(t, 10*time.Second, "the short retention to expire", func() bool {
		st, l := begin(t, s, idempotency.Key("storetest-short", "same-id"), time.Minute)
		if st == idempotency.Fresh {
			_ = s.Abort(ctx(t), l)
		}
		return st == idempotency.Fresh
	})
	fire()
	if r.get("short") != 2 || r.get("default") != 1 {
		t.Fatalf("after the retention: short %d, default %d runs; want 2, 1", r.get("short"), r.get("default"))
	}
}
