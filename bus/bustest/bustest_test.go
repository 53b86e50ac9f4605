package bustest_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/bus/bustest"
	"github.com/busline/busline/middleware"
)

type ping struct{ N int }

var pinged = bus.NewEvent[ping]("bustest", "pinged")

// WaitIdle returns only after a failed event's delayed redelivery was handled.
func TestWaitIdleWaitsForRedelivery(t *testing.T) {
	b := bustest.New(t, bus.Config{})
	var calls atomic.Int64
	err := bus.Listen(b.Bus, pinged, "flaky", func(context.Context, bus.Delivery[ping]) error {
		if calls.Add(1) == 1 {
			return errors.New("first delivery fails")
		}
		return nil
	}, bus.WithRetry(bus.RetryPolicy{Tries: 1, RedeliveryDelay: func(int) time.Duration { return 50 * time.Millisecond }}))
	if err != nil {
		t.Fatal(err)
	}
	b.Start(t)
	if _, err := bus.Fire(context.Background(), b.Bus, pinged, ping{1}); err != nil {
		t.Fatal(err)
	}
	b.MustWaitIdle(t)
	if calls.Load() != 2 {
		t.Fatalf("WaitIdle returned after %d handler calls, want 2 (the failure and its redelivery)", calls.Load())
	}
	h := b.Handled("test-flaky")
	if len(h) != 2 || h[0].Err == nil || h[1].Err != nil || h[1].Attempt != 2 {
		t.Errorf("Handled = %+v", h)
	}
}

// WaitIdle gives up with the context while a handler holds an event.
func TestWaitIdleStopsWithContext(t *testing.T) {
	b := bustest.New(t, bus.Config{ShutdownTimeout: 10 * time.Millisecond})
	release := make(chan struct{})
	defer close(release)
	if err := bus.Listen(b.Bus, pinged, "stuck", func(context.Context, bus.Delivery[ping]) error {
		<-release
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	b.Start(t)
	if _, err := bus.Fire(context.Background(), b.Bus, pinged, ping{1}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := b.WaitIdle(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitIdle = %v, want the context's error while an event is unacknowledged", err)
	}
	// The error names what holds the bus.
	if !strings.Contains(err.Error(), "test-stuck on bustest.pinged: 1 pending") {
		t.Errorf("WaitIdle's error does not name the busy group: %v", err)
	}
}

// A second bus on b.URL() is another process of the same deployment.
func TestURLSharesTheBroker(t *testing.T) {
	b := bustest.New(t, bus.Config{Service: "svc"})
	other, err := bus.New(bus.Config{Service: "svc", Process: "other", Transport: b.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := bus.Fire(context.Background(), other, pinged, ping{7}); err != nil {
		t.Fatal(err)
	}
	b.AssertFired(t, pinged.Name(), 1)
}

// A handler that panics is in Handled, with an error naming the panic; the
// bus's recovery middleware turns the panic into a failed delivery (dead
// at once here, with MaxDeliveries 1).
func TestHandledRecordsPanics(t *testing.T) {
	b := bustest.New(t, bus.Config{Listener: bus.ListenerOptions{MaxDeliveries: 1}})
	if err := bus.Listen(b.Bus, pinged, "crashy", func(context.Context, bus.Delivery[ping]) error {
		panic("boom")
	}); err != nil {
		t.Fatal(err)
	}
	b.Start(t)
	id, err := bus.Fire(context.Background(), b.Bus, pinged, ping{1})
	if err != nil {
		t.Fatal(err)
	}
	b.MustWaitIdle(t)
	h := b.Handled("test-crashy")
	if len(h) != 1 || h[0].ID != id || !errors.Is(h[0].Err, middleware.ErrPanic) || !strings.Contains(h[0].Err.Error(), "panicked: boom") {
		t.Fatalf("Handled = %+v, want the one panicking call", h)
	}
	if d := b.DeadLetters("test-crashy"); len(d) != 1 || d[0].Message.UUID != id {
		t.Fatalf("dead letters %+v", d)
	}
}

// A delayed event is counted by Scheduled until it is due, and Fired lists
// it once it is.
func TestScheduled(t *testing.T) {
	b := bustest.New(t, bus.Config{})
	b.Start(t)
	if _, err := bus.Fire(context.Background(), b.Bus, pinged, ping{1}, bus.WithDelay(time.Hour)); err != nil {
		t.Fatal(err)
	}
	s := b.Scheduled()
	if len(s) != 1 || s[0].Event != pinged.Name() || s[0].Count != 1 {
		t.Fatalf("Scheduled = %+v", s)
	}
	b.AssertFired(t, pinged.Name(), 0)
	b.MustWaitIdle(t) // does not wait for the hour
}

// A delayed event whose due time passed is waited for by WaitIdle, even
// before the broker's timer moved it into its stream (on one CPU the timer
// often runs after WaitIdle looked).
func TestWaitIdleWaitsForADueEvent(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	b := bustest.New(t, bus.Config{})
	var calls atomic.Int64
	if err := bus.Listen(b.Bus, pinged, "due", func(context.Context, bus.Delivery[ping]) error {
		calls.Add(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	b.Start(t)
	for i := range 50 {
		if _, err := bus.Fire(context.Background(), b.Bus, pinged, ping{i}, bus.WithDelay(time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		for due := time.Now().Add(2 * time.Millisecond); time.Now().Before(due); {
			// busy: the timer's goroutine does not get the one CPU
		}
		b.MustWaitIdle(t)
		if got := calls.Load(); got != int64(i+1) {
			t.Fatalf("WaitIdle returned with %d of %d due events handled", got, i+1)
		}
	}
}

// DeliverScheduled moves delayed events due within the given time, in due
// order, without waiting out their delays; later ones stay scheduled.
func TestDeliverScheduled(t *testing.T) {
	b := bustest.New(t, bus.Config{})
	var got []int
	if err := bus.Listen(b.Bus, pinged, "later", func(_ context.Context, d bus.Delivery[ping]) error {
		got = append(got, d.Payload.N)
		return nil
	}, bus.WithConcurrency(1)); err != nil {
		t.Fatal(err)
	}
	b.Start(t)
	ctx := context.Background()
	for _, p := range []struct {
		n     int
		delay time.Duration
	}{{2, 2 * time.Hour}, {1, time.Hour}, {3, 48 * time.Hour}} {
		if _, err := bus.Fire(ctx, b.Bus, pinged, ping{p.n}, bus.WithDelay(p.delay)); err != nil {
			t.Fatal(err)
		}
	}
	if n := b.DeliverScheduled(30 * time.Minute); n != 0 {
		t.Fatalf("DeliverScheduled(30m) moved %d, want 0", n)
	}
	if n := b.DeliverScheduled(3 * time.Hour); n != 2 {
		t.Fatalf("DeliverScheduled(3h) moved %d, want 2", n)
	}
	b.MustWaitIdle(t)
	if len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("handled %v, want [1 2] (in due order)", got)
	}
	if s := b.Scheduled(); len(s) != 1 || s[0].Count != 1 {
		t.Fatalf("still scheduled %+v, want the 48 h event", s)
	}
}
