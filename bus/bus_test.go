package bus_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/bus/bustest"
)

type price struct {
	Product string  `json:"product"`
	Price   float64 `json:"price"`
}

var priceChanged = bus.NewEvent[price]("competitor_prices", "changed")

func TestListenErrors(t *testing.T) {
	b := bustest.New(t, bus.Config{Service: "svc"})
	h := func(context.Context, bus.Delivery[price]) error { return nil }
	if err := bus.Listen(b.Bus, priceChanged, "", h); !errors.Is(err, bus.ErrInvalidListener) {
		t.Errorf("empty name: %v", err)
	}
	if err := bus.Listen(b.Bus, priceChanged, "bad name", h); !errors.Is(err, bus.ErrInvalidListener) {
		t.Errorf("bad name: %v", err)
	}
	if err := bus.Listen(b.Bus, priceChanged, "x", nil); !errors.Is(err, bus.ErrInvalidListener) {
		t.Errorf("nil handler: %v", err)
	}
	if err := bus.Listen(b.Bus, bus.Event[price]{}, "x", h); !errors.Is(err, bus.ErrInvalidEvent) {
		t.Errorf("zero event: %v", err)
	}
	if err := bus.Listen(b.Bus, priceChanged, "alerts", h); err != nil {
		t.Fatal(err)
	}
	err := bus.Listen(b.Bus, priceChanged, "alerts", h)
	if !errors.Is(err, bus.ErrDuplicateListener) || !strings.Contains(err.Error(), "alerts") {
		t.Errorf("duplicate name: %v", err)
	}
	b.Start(t)
	if err := bus.Listen(b.Bus, priceChanged, "late", h); !errors.Is(err, bus.ErrStarted) {
		t.Errorf("Listen after Start: %v", err)
	}
	if err := b.Bus.Start(context.Background()); !errors.Is(err, bus.ErrStarted) {
		t.Errorf("second Start: %v", err)
	}
	if err := b.Bus.Use(func(h message.HandlerFunc) message.HandlerFunc { return h }); !errors.Is(err, bus.ErrStarted) {
		t.Errorf("Use after Start: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Bus.Use(func(h message.HandlerFunc) message.HandlerFunc { return h }); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Use after Close: %v", err)
	}
}

func TestFireErrors(t *testing.T) {
	b := bustest.New(t, bus.Config{Service: "svc", MaxPayloadBytes: 64})
	ctx := context.Background()
	if _, err := bus.Fire(ctx, b.Bus, priceChanged, price{Product: strings.Repeat("x", 100)}); !errors.Is(err, bus.ErrPayloadTooLarge) {
		t.Errorf("large payload: %v", err)
	}
	if _, err := bus.Fire(ctx, b.Bus, bus.Event[price]{}, price{}); !errors.Is(err, bus.ErrInvalidEvent) {
		t.Errorf("zero event: %v", err)
	}
	bad := bus.NewEvent[chan int]("api", "bad")
	if _, err := bus.Fire(ctx, b.Bus, bad, make(chan int)); err == nil {
		t.Error("unencodable payload accepted")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := bus.Fire(cancelled, b.Bus, priceChanged, price{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	b.AssertFired(t, priceChanged.Name(), 0)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.Fire(ctx, b.Bus, priceChanged, price{}); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Fire after Close: %v", err)
	}
}

func TestEnvelope(t *testing.T) {
	b := bustest.New(t, bus.Config{Service: "price-scraper"})
	var got bus.Delivery[price]
	err := bus.Listen(b.Bus, priceChanged, "record", func(_ context.Context, d bus.Delivery[price]) error {
		got = d
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b.Start(t)
	before := time.Now()
	id, err := bus.Fire(context.Background(), b.Bus, priceChanged, price{"grinder", 89.99}, bus.WithMetadata(map[string]string{"tenant": "acme", "ce-type": "spoofed"}))
	if err != nil {
		t.Fatal(err)
	}
	b.MustWaitIdle(t)
	if got.ID != id || got.Event != "competitor_prices.changed" || got.Payload != (price{"grinder", 89.99}) || got.Attempt != 1 {
		t.Errorf("delivery = %+v", got)
	}
	if got.Group != "price-scraper-record" {
		t.Errorf("group = %q", got.Group)
	}
	if got.FiredAt.Before(before.Add(-time.Second)) || got.FiredAt.After(time.Now()) {
		t.Errorf("FiredAt = %v", got.FiredAt)
	}
	md := got.Metadata
	want := map[string]string{
		"ce-id": id, "ce-source": "/price-scraper", "ce-type": "competitor_prices.changed",
		"ce-specversion": "1.0", "content-type": "application/json", "tenant": "acme",
	}
	for k, v := range want {
		if md[k] != v {
			t.Errorf("metadata %s = %q, want %q", k, md[k], v)
		}
	}
	if len(id) != 36 || id[14] != '7' {
		t.Errorf("event ID %q is not a UUIDv7", id)
	}
	fired := b.Fired(priceChanged.Name())
	if len(fired) != 1 || string(fired[0].Payload) != `{"product":"grinder","price":89.99}` {
		t.Errorf("fired = %+v", fired)
	}
}

func TestDuplicateEventIDHandledOnce(t *testing.T) {
	b := bustest.New(t, bus.Config{Service: "svc"})
	var calls atomic.Int64
	err := bus.Listen(b.Bus, priceChanged, "once", func(context.Context, bus.Delivery[price]) error {
		calls.Add(1)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b.Start(t)
	for range 3 {
		if _, err := bus.Fire(context.Background(), b.Bus, priceChanged, price{}, bus.WithEventID("same-id")); err != nil {
			t.Fatal(err)
		}
	}
	b.MustWaitIdle(t)
	if calls.Load() != 1 {
		t.Errorf("handler ran %d times for three fires of one event ID, want 1", calls.Load())
	}
}

func TestFirstFailureIsRetriedNotDropped(t *testing.T) {
	b := bustest.New(t, bus.Config{Service: "svc"})
	var calls atomic.Int64
	err := bus.Listen(b.Bus, priceChanged, "flaky", func(context.Context, bus.Delivery[price]) error {
		if calls.Add(1) == 1 {
			return errors.New("first attempt fails")
		}
		return nil
	}, bus.WithRetry(bus.RetryPolicy{Tries: 1, RedeliveryDelay: func(int) time.Duration { return time.Millisecond }}))
	if err != nil {
		t.Fatal(err)
	}
	b.Start(t)
	if _, err := bus.Fire(context.Background(), b.Bus, priceChanged, price{}); err != nil {
		t.Fatal(err)
	}
	b.MustWaitIdle(t)
	b.AssertSucceeded(t, "svc-flaky", 1) // the failed first call is not counted
	if calls.Load() != 2 {
		t.Errorf("handler calls = %d, want 2 (fail, then the redelivery runs)", calls.Load())
	}
}

func TestRunStopsWithContext(t *testing.T) {
	b := bustest.New(t, bus.Config{Service: "svc"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
	if _, err := bus.Fire(context.Background(), b.Bus, priceChanged, price{}); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Fire after Run returned: %v", err)
	}
}

// A second Run of a bus that runs already returns ErrStarted and leaves
// the bus to the first: events are still handled, and the first Run
// closes it when its own context ends.
func TestSecondRunLeavesTheBusRunning(t *testing.T) {
	b := bustest.New(t, bus.Config{Service: "svc"})
	handled := make(chan struct{}, 1)
	if err := bus.Listen(b.Bus, priceChanged, "watch", func(context.Context, bus.Delivery[price]) error {
		handled <- struct{}{}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := make(chan error, 1)
	go func() { first <- b.Run(ctx) }()
	// The first Run has started once a live check passes with its listener.
	deadline := time.Now().Add(10 * time.Second)
	for b.Ready(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the first Run never started the bus")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := b.Run(context.Background()); !errors.Is(err, bus.ErrStarted) {
		t.Fatalf("second Run = %v, want bus.ErrStarted", err)
	}
	if _, err := bus.Fire(context.Background(), b.Bus, priceChanged, price{}); err != nil {
		t.Fatalf("Fire after the second Run: %v (the second Run closed the bus)", err)
	}
	select {
	case <-handled:
	case <-time.After(10 * time.Second):
		t.Fatal("the event fired after the second Run was not handled")
	}
	cancel()
	if err := <-first; err != nil {
		t.Fatalf("first Run: %v", err)
	}
}

// A handler slower than its lease keeps the lease: a duplicate that
// arrives after the lease would have run out is not run in parallel.
func TestSlowHandlerKeepsDedupLease(t *testing.T) {
	b := bustest.New(t, bus.Config{Service: "svc"})
	var running, maxRunning, calls atomic.Int64
	err := bus.Listen(b.Bus, priceChanged, "slow", func(context.Context, bus.Delivery[price]) error {
		calls.Add(1)
		n := running.Add(1)
		defer running.Add(-1)
		for m := maxRunning.Load(); n > m && !maxRunning.CompareAndSwap(m, n); m = maxRunning.Load() {
		}
		time.Sleep(3 * time.Second)
		return nil
	}, bus.WithAckTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	b.Start(t)
	ctx := context.Background()
	if _, err := bus.Fire(ctx, b.Bus, priceChanged, price{}, bus.WithEventID("slow-1")); err != nil {
		t.Fatal(err)
	}
	for calls.Load() == 0 { // the first copy is running
		time.Sleep(time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // past the 1s lease, which the keeper renews every 500ms
	if _, err := bus.Fire(ctx, b.Bus, priceChanged, price{}, bus.WithEventID("slow-1")); err != nil {
		t.Fatal(err)
	}
	b.MustWaitIdle(t)
	if calls.Load() != 1 || maxRunning.Load() != 1 {
		t.Errorf("handler ran %d times (%d at once) for two copies of one event, want once", calls.Load(), maxRunning.Load())
	}
}
