package faults

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/busline/busline/bus"
)

// quietLogger drops the logs of the test's own buses.
func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newBus opens a bus that the test closes when it ends.
func newBus(t testing.TB, cfg bus.Config) *bus.Bus {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	if cfg.Process == "" {
		cfg.Process = "p-" + randomName(6)
	}
	b, err := bus.New(cfg)
	if err != nil {
		t.Fatalf("bus.New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// firer fires ticked events from its own goroutine, burst events every
// interval, until it fired total events or is stopped. It records the ID
// of every Fire that returned nil (the events the bus promised to deliver)
// and counts the ones that failed.
type firer struct {
	b *bus.Bus

	mu       sync.Mutex
	ok       []string
	okAt     []time.Time
	failed   int
	failedAt []time.Time
	lastErr  error
	index    map[string]int // position in ok, built by firedBefore

	slowestFail time.Duration // the longest a failed Fire took to return

	stop chan struct{}
	done chan struct{}
}

func startFiring(t testing.TB, b *bus.Bus, total, burst int, interval time.Duration) *firer {
	f := &firer{b: b, stop: make(chan struct{}), done: make(chan struct{})}
	go f.run(total, burst, interval)
	t.Cleanup(f.halt)
	return f
}

func (f *firer) run(total, burst int, interval time.Duration) {
	defer close(f.done)
	tk := time.NewTicker(interval)
	defer tk.Stop()
	var wg sync.WaitGroup
	for n := 0; n < total; {
		// A burst fires concurrently, as a service's request handlers would.
		for i := 0; i < burst && n < total; i++ {
			wg.Add(1)
			go func(n int) {
				defer wg.Done()
				f.fire(n)
			}(n)
			n++
		}
		wg.Wait()
		select {
		case <-f.stop:
			return
		case <-tk.C:
		}
	}
}

func (f *firer) fire(n int) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	began := time.Now()
	id, err := bus.Fire(ctx, f.b, ticked, tick{N: n})
	cancel()
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		f.ok = append(f.ok, id)
		f.okAt = append(f.okAt, now)
	} else {
		f.failed++
		f.failedAt = append(f.failedAt, now)
		f.lastErr = err
		f.slowestFail = max(f.slowestFail, now.Sub(began))
	}
}

// halt stops firing and waits for the goroutine.
func (f *firer) halt() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	<-f.done
}

// wait waits until every event was fired (or the firer was halted).
func (f *firer) wait(t testing.TB, within time.Duration) {
	t.Helper()
	select {
	case <-f.done:
	case <-time.After(within):
		t.Fatalf("firing did not finish within %s", within)
	}
}

// fired returns the IDs of the events whose Fire returned nil.
func (f *firer) fired() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ok...)
}

func (f *firer) counts() (ok, failed int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.ok), f.failed
}

// firedBefore reports whether the Fire of id returned nil before at.
func (f *firer) firedBefore(id string, at time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.index == nil || len(f.index) != len(f.ok) {
		f.index = make(map[string]int, len(f.ok))
		for i, x := range f.ok {
			f.index[x] = i
		}
	}
	i, ok := f.index[id]
	return ok && f.okAt[i].Before(at)
}
