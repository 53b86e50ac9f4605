package faults

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/transports/memory"
)

// shutdownReport is what a graceful shutdown test measured.
type shutdownReport struct {
	fired, inFlightAtTerm, unfinished int
	stopTook                          time.Duration // SIGTERM to exit
	handledButPending                 int           // Redis: entries handled yet still pending for the stopped process
	released                          int           // Redis: entries read ahead, never handed out, released for the group
	duplicated, lost                  int           // after another process drained the rest
}

func (r shutdownReport) String() string {
	s := fmt.Sprintf("fired %d, handlers in flight at SIGTERM %d, unfinished after exit %d, stop took %s",
		r.fired, r.inFlightAtTerm, r.unfinished, r.stopTook.Round(time.Millisecond))
	if r.handledButPending >= 0 {
		s += fmt.Sprintf(", handled but still pending for it %d, read ahead and released %d", r.handledButPending, r.released)
	}
	return s + fmt.Sprintf("; after a second process drained the rest: lost %d, duplicated %d", r.lost, r.duplicated)
}

// TestGracefulShutdown sends SIGTERM to a listener process running bus.Run
// (stopped through signal.NotifyContext) while it works: handlers of 100ms
// with events arriving faster than it handles them. The process exits 0;
// every handler that began finished; no event it handled is still pending
// for it on the broker (its acknowledgements were sent before it exited);
// and a second process then handles the rest with no event handled twice.
func TestGracefulShutdown(t *testing.T) {
	for _, kind := range []string{"redis", "amqp"} {
		t.Run(kind, func(t *testing.T) {
			checkLeaks(t)
			r := gracefulShutdown(t, newTarget(t, kind))
			t.Logf("%s SIGTERM under load: %s", kind, r)
		})
	}
	t.Run("memory", func(t *testing.T) {
		checkLeaks(t)
		r := gracefulShutdownMemory(t, memoryTarget(t))
		t.Logf("memory Run's context cancelled under load: %s", r)
	})
}

func gracefulShutdown(t *testing.T, tg *target) shutdownReport {
	const ackTimeout = time.Minute
	dir := t.TempDir()
	spec := func(process string) childSpec {
		s := tg.child(process, outFile(dir, process))
		s.AckTimeout, s.Concurrency, s.Work, s.Begin = ackTimeout, 8, 100*time.Millisecond, true
		return s
	}
	p1 := startChild(t, spec("p1"))
	waitFor(t, 30*time.Second, "the listener to join its group", tg.ready)
	pub := newBus(t, bus.Config{Service: tg.service, Transport: tg.url})
	// About 120 events/s against the 80/s the listener can handle.
	f := startFiring(t, pub, 400, 6, 50*time.Millisecond)
	p1file := outFile(dir, "p1")
	waitFor(t, time.Minute, "handlers to be busy", func() bool {
		n := 0
		for _, r := range readRecords(t, p1file) {
			if r.kind == "B" {
				n++
			}
		}
		return n >= 40
	})
	term := time.Now()
	err, exited := p1.terminate(30 * time.Second)
	if !exited {
		t.Fatal("the listener did not exit within 30s of SIGTERM")
	}
	var r shutdownReport
	r.stopTook = time.Since(term)
	if err != nil {
		t.Errorf("the listener exited with %v after SIGTERM, want status 0", err)
	}

	// Every handler that began finished.
	begun, done := map[string]int{}, map[string]int{}
	recs := readRecords(t, p1file)
	for _, rec := range recs {
		switch rec.kind {
		case "B":
			begun[rec.id]++
		case "H":
			done[rec.id]++
		}
	}
	finishedBeforeTerm := map[string]bool{}
	for _, rec := range recs {
		if rec.kind == "H" && rec.at.Before(term) {
			finishedBeforeTerm[rec.id] = true
		}
	}
	for _, rec := range recs {
		if rec.kind == "B" && rec.at.Before(term) && !finishedBeforeTerm[rec.id] {
			r.inFlightAtTerm++
		}
	}
	for id, n := range begun {
		if done[id] < n {
			r.unfinished++
		}
	}
	if r.unfinished > 0 {
		t.Errorf("%d handlers began and never finished after SIGTERM", r.unfinished)
	}
	if r.inFlightAtTerm == 0 {
		t.Errorf("no handler was in flight at SIGTERM: the test did not test a shutdown under load")
	}

	// Nothing it handled is still pending for it.
	r.handledButPending = -1
	if pending, ok := tg.pending("p1"); ok {
		r.handledButPending = 0
		for id := range pending {
			if done[id] > 0 {
				r.handledButPending++
			} else if begun[id] == 0 {
				r.released++
			}
		}
		n, idle := tg.pendingCount("p1", ackTimeout)
		if r.handledButPending > 0 {
			t.Errorf("%d events the stopped process handled are still pending for it: their acknowledgements never reached Redis", r.handledButPending)
		}
		if idle != n {
			t.Errorf("%d of the %d entries left pending for the stopped process are not claimable at once (idle < AckTimeout)", n-idle, n)
		}
	}

	// A second process handles the rest; nothing is handled twice.
	p2 := startChild(t, spec("p2"))
	f.wait(t, time.Minute)
	fired := f.fired()
	r.fired = len(fired)
	files := []string{p1file, outFile(dir, "p2")}
	waitHandled(t, fired, files, time.Minute)
	if err, ok := p2.terminate(30 * time.Second); !ok || err != nil {
		t.Errorf("p2 on SIGTERM: exited %v, error %v", ok, err)
	}
	byID := handledBy(readRecords(t, files...))
	for _, id := range fired {
		switch n := len(byID[id]); {
		case n == 0:
			r.lost++
		case n > 1:
			r.duplicated++
		}
	}
	if r.duplicated > 0 {
		t.Errorf("%d events handled twice after a graceful shutdown", r.duplicated)
	}
	if n, _ := tg.pendingCount("p1", 0); n > 0 {
		t.Errorf("%d entries still pending for the stopped process after p2 drained the group", n)
	}
	return r
}

// gracefulShutdownMemory is the in-process form on a shared memory broker:
// bus.Run's context is cancelled (what signal.NotifyContext does on
// SIGTERM) while handlers run.
func gracefulShutdownMemory(t *testing.T, tg *target) shutdownReport {
	const work = 100 * time.Millisecond
	var mu sync.Mutex
	begun, done := map[string]int{}, map[string]int{}
	handler := func(ctx context.Context, d bus.Delivery[tick]) error {
		mu.Lock()
		begun[d.ID]++
		mu.Unlock()
		time.Sleep(work)
		mu.Lock()
		done[d.ID]++
		mu.Unlock()
		return nil
	}
	runBus := func(process string) (context.CancelFunc, <-chan error) {
		b := newBus(t, bus.Config{Service: tg.service, Process: process, Transport: tg.url})
		if err := bus.Listen(b, ticked, listenerName, handler, bus.WithConcurrency(8)); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- b.Run(ctx) }()
		return cancel, errc
	}
	stop1, exit1 := runBus("p1")
	pub := newBus(t, bus.Config{Service: tg.service, Transport: tg.url})
	waitFor(t, 10*time.Second, "the group to exist", func() bool {
		return len(memory.Named(tg.url[len("memory://"):], 0).Groups(ticked.Name())) > 0
	})
	f := startFiring(t, pub, 400, 6, 50*time.Millisecond)
	waitFor(t, time.Minute, "handlers to be busy", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(begun) >= 40
	})
	var r shutdownReport
	mu.Lock()
	for id := range begun {
		if done[id] == 0 {
			r.inFlightAtTerm++
		}
	}
	mu.Unlock()
	term := time.Now()
	stop1()
	select {
	case err := <-exit1:
		if err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of its context ending")
	}
	r.stopTook = time.Since(term)
	mu.Lock()
	for id, n := range begun {
		if done[id] < n {
			r.unfinished++
		}
	}
	mu.Unlock()
	if r.unfinished > 0 {
		t.Errorf("%d handlers began and never finished after the shutdown", r.unfinished)
	}
	r.handledButPending = -1
	broker := memory.Named(tg.url[len("memory://"):], 0)
	stop2, exit2 := runBus("p2")
	f.wait(t, time.Minute)
	fired := f.fired()
	r.fired = len(fired)
	waitFor(t, time.Minute, "every fired event handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range fired {
			if done[id] == 0 {
				return false
			}
		}
		return true
	})
	stop2()
	if err := <-exit2; err != nil {
		t.Errorf("p2 Run: %v", err)
	}
	// What p1 had read and not handed out when it stopped went back
	// claimable at once: p2 took it (its first claim pass runs at start).
	for _, g := range broker.Groups(ticked.Name()) {
		for _, c := range g.Consumers {
			if c.Name == "p1" && c.Pending > 0 {
				t.Errorf("%d events still pending for the stopped process after p2 drained the group", c.Pending)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range fired {
		if done[id] > 1 {
			r.duplicated++
		}
	}
	if r.duplicated > 0 {
		t.Errorf("%d events handled twice after a graceful shutdown", r.duplicated)
	}
	return r
}
