package faults

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/busline/busline/bus"
)

// TestCloseOnAStalledBroker: the broker stops answering while a bus has a
// listener (still connected: a proxy holds every reply) and a handler in
// flight. bus.Close returns within ShutdownTimeout, a second and
// CloseBudget (and a few seconds), having dropped the connections
// (before, each of its steps waited out the client's own timeouts: 42 s
// on Redis, 26 s on NATS, 15 s on RabbitMQ, measured without a handler in
// flight); no goroutine of the bus is left waiting on the
// broker; and once the broker answers again, a restart under the same
// process name gets the event whose handler was cut short: nothing is lost.
func TestCloseOnAStalledBroker(t *testing.T) {
	const shutdownTimeout = time.Second
	for _, kind := range []string{"redis", "amqp", "nats"} {
		t.Run(kind, func(t *testing.T) {
			checkLeaks(t)
			tg := newTarget(t, kind)
			p, raw := Proxied(t, tg.url)
			// Every goroutine from here on is the bus's (the proxy's
			// own aside): none may be left once Close returned.
			ignoreBefore := goleak.IgnoreCurrent()
			b := newBus(t, bus.Config{Service: tg.service, Transport: raw, Process: "p1", ShutdownTimeout: shutdownTimeout})
			handled := make(chan string, 16)
			var block atomic.Bool // the handler waits for its context to end
			listen := func(b *bus.Bus) {
				if err := bus.Listen(b, ticked, listenerName, func(ctx context.Context, d bus.Delivery[tick]) error {
					handled <- d.ID
					if block.Load() {
						<-ctx.Done()
						return ctx.Err()
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if err := b.Start(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			listen(b)
			fireAndAwait(t, b, handled)
			block.Store(true)
			cut := fireAndAwait(t, b, handled) // its handler is running

			p.Hold()
			t.Cleanup(p.Release)
			start := time.Now()
			err := b.Close()
			took := time.Since(start)
			t.Logf("Close on a stalled %s took %s: %v", kind, took.Round(time.Millisecond), err)
			if !errors.Is(err, bus.ErrConnectionsDropped) {
				t.Errorf("Close on a stalled broker = %v, want bus.ErrConnectionsDropped", err)
			}
			if limit := shutdownTimeout + time.Second + bus.CloseBudget + 3*time.Second; took > limit {
				t.Errorf("Close on a stalled broker took %s, want at most %s (ShutdownTimeout, a second, CloseBudget)", took.Round(time.Millisecond), limit)
			}
			// Nothing of the bus still waits on the broker (the proxy's
			// own goroutines aside).
			if err := goleak.Find(ignoreBefore,
				goleak.IgnoreAnyFunction("github.com/busline/busline/internal/faults.(*Proxy).pipe.func1"),
				goleak.IgnoreAnyFunction("github.com/busline/busline/internal/faults.(*Proxy).serve.func1")); err != nil {
				t.Errorf("goroutines left after Close on a stalled broker: %v", err)
			}
			p.Release()

			block.Store(false)
			again := newBus(t, bus.Config{Service: tg.service, Transport: tg.url, Process: "p1"})
			listen(again)
			awaitID(t, handled, cut)
			fireAndAwait(t, again, handled)
		})
	}
}

// fireAndAwait fires one event on b, waits for its ID on handled and
// returns it.
func fireAndAwait(t testing.TB, b *bus.Bus, handled <-chan string) string {
	t.Helper()
	id, err := bus.Fire(context.Background(), b, ticked, tick{})
	if err != nil {
		t.Fatal(err)
	}
	awaitID(t, handled, id)
	return id
}

// awaitID waits for id on handled, at most a minute.
func awaitID(t testing.TB, handled <-chan string, id string) {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		select {
		case got := <-handled:
			if got == id {
				return
			}
		case <-deadline:
			t.Fatalf("event %s not handled within a minute", id)
		}
	}
}
