package faults

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/busline/busline/bus"
)

// TestCloseOnAStalledBroker: the broker stops answering while a bus has a
// listener (still connected: a proxy holds every reply), and bus.Close
// returns within its close budget instead of the sum of its steps' own
// timeouts; the listener's group still works once the broker answers
// again.
func TestCloseOnAStalledBroker(t *testing.T) {
	const shutdownTimeout = time.Second
	for _, kind := range []string{"redis", "amqp", "nats"} {
		t.Run(kind, func(t *testing.T) {
			checkLeaks(t)
			tg := newTarget(t, kind)
			raw, p := throughProxy(t, tg.url)
			b := newBus(t, bus.Config{Service: tg.service, Transport: raw, Process: "p1", ShutdownTimeout: shutdownTimeout})
			handled := make(chan string, 16)
			listen := func(b *bus.Bus) {
				if err := bus.Listen(b, ticked, listenerName, func(_ context.Context, d bus.Delivery[tick]) error {
					handled <- d.ID
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

			p.Hold()
			t.Cleanup(p.Release)
			start := time.Now()
			err := b.Close()
			took := time.Since(start)
			t.Logf("Close on a stalled %s took %s: %v", kind, took.Round(time.Millisecond), err)
			if !errors.Is(err, bus.ErrConnectionsDropped) {
				t.Errorf("Close on a stalled broker = %v, want bus.ErrConnectionsDropped", err)
			}
			// The handlers' part (a commit to the stalled Redis store can
			// hold one) ends by ShutdownTimeout and one more second.
			if limit := shutdownTimeout + time.Second + bus.CloseBudget + 3*time.Second; took > limit {
				t.Errorf("Close on a stalled broker took %s, want at most %s (ShutdownTimeout, a second, CloseBudget)", took.Round(time.Millisecond), limit)
			}
			p.Release()

			again := newBus(t, bus.Config{Service: tg.service, Transport: tg.url, Process: "p1"})
			listen(again)
			fireAndAwait(t, again, handled)
		})
	}
}

// throughProxy returns raw with its host replaced by a proxy's to it.
func throughProxy(t testing.TB, raw string) (string, *Proxy) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	p, err := StartProxy(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	u.Host = p.Addr()
	return u.String(), p
}

// fireAndAwait fires one event on b and waits for its ID on handled.
func fireAndAwait(t testing.TB, b *bus.Bus, handled <-chan string) {
	t.Helper()
	id, err := bus.Fire(context.Background(), b, ticked, tick{})
	if err != nil {
		t.Fatal(err)
	}
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
