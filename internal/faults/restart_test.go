package faults

import (
	"context"
	"fmt"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/busline/busline/bus"
)

// TestBrokerRestart restarts the broker while events are fired and
// handled. Redis: a redis-server of the test's own (AOF, fsync always) on
// its own port is stopped (SIGKILL, and SIGTERM in the long run) and
// started again on the same port and data. RabbitMQ: every connection is
// cut by stopping the TCP proxy the buses reach the broker through, and
// the proxy is started again. Fire during the outage returns an error;
// the listener reconnects and resumes; every event whose Fire returned
// nil is handled.
func TestBrokerRestart(t *testing.T) {
	for _, sig := range scale.brokerSignals {
		t.Run("redis-"+sig, func(t *testing.T) {
			checkLeaks(t)
			srv, err := StartRedisServer(t.TempDir())
			if err == ErrNoRedisServer {
				unavailable(t, "redis-server is not on PATH: install Redis (apt-get install redis-server) to run the broker restart test")
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Stop(syscall.SIGKILL) })
			tg := redisTarget(t, srv.Addr(), "")
			s := map[string]syscall.Signal{"SIGKILL": syscall.SIGKILL, "SIGTERM": syscall.SIGTERM}[sig]
			r := brokerRestart(t, tg, func() { srv.Stop(s) }, func() {
				if err := srv.Start(); err != nil {
					t.Fatal(err)
				}
			})
			t.Logf("redis restart (%s): %s", sig, r)
		})
	}
	t.Run("amqp", func(t *testing.T) {
		checkLeaks(t)
		needAMQP(t)
		u, err := url.Parse(amqpURL())
		if err != nil {
			t.Fatal(err)
		}
		host := u.Host
		if u.Port() == "" {
			host += ":5672"
		}
		p, err := StartProxy(host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Stop)
		u.Host = p.Addr()
		tg := amqpTarget(t, u.String(), "reconnect_max=500ms")
		r := brokerRestart(t, tg, p.Stop, func() {
			if err := p.Start(); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("amqp connections cut: %s", r)
	})
}

type restartReport struct {
	fired, failed, handled, duplicated, lost int
	outage                                   time.Duration
	slowestFail                              time.Duration // the longest a failed Fire took
	lastErr                                  error
	resume                                   time.Duration // broker back to the listener's first handled event
	backlog                                  time.Duration // broker back to the last event fired before it handled
	latencyAfter                             time.Duration // the longest Fire-to-handler time of events fired after
}

func (r restartReport) String() string {
	return fmt.Sprintf("fired %d (Fire returned nil), Fire errors %d (slowest %s: %v), handled %d, lost %d, duplicated %d, outage %s, broker back to the listener handling again %s, to the events fired before it all handled %s; events fired after it handled within %s",
		r.fired, r.failed, r.slowestFail.Round(time.Millisecond), r.lastErr, r.handled, r.lost, r.duplicated, r.outage.Round(time.Millisecond),
		r.resume.Round(time.Millisecond), r.backlog.Round(time.Millisecond), r.latencyAfter.Round(time.Millisecond))
}

func brokerRestart(t *testing.T, tg *target, stop, start func()) restartReport {
	rec := newRecorder(time.Millisecond)
	lb := newBus(t, bus.Config{Service: tg.service, Process: "p1", Transport: tg.url})
	if err := bus.Listen(lb, ticked, listenerName, rec.handle,
		bus.WithAckTimeout(5*time.Second), bus.WithConcurrency(8)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := lb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pub := newBus(t, bus.Config{Service: tg.service, Transport: tg.url})
	total := scale.restartEvents
	f := startFiring(t, pub, total, 10, 5*time.Millisecond)
	// Stop the broker while most events are still to be fired (the firing
	// is paced; handling may lag behind on a loaded machine), once the
	// listener has handled some.
	waitFor(t, time.Minute, "events fired and handled before the restart", func() bool {
		ok, _ := f.counts()
		return ok >= total/3 && rec.count() > 0
	})

	stop()
	down := time.Now()
	_, failedBefore := f.counts()
	waitFor(t, 30*time.Second, "Fire to fail while the broker is down", func() bool {
		_, failed := f.counts()
		return failed > failedBefore
	})
	start()
	up := time.Now()
	f.wait(t, 2*time.Minute)
	fired := f.fired()
	deadline := time.Now().Add(time.Minute)
	for rec.missing(fired) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events whose Fire returned nil never handled", rec.missing(fired), len(fired))
		}
		time.Sleep(20 * time.Millisecond)
	}
	r := restartReport{fired: len(fired), outage: up.Sub(down)}
	_, r.failed = f.counts()
	f.mu.Lock()
	r.slowestFail, r.lastErr = f.slowestFail, f.lastErr
	f.mu.Unlock()
	calls := rec.snapshot()
	r.handled = len(calls)
	firstAfter := time.Time{}
	for _, cs := range calls {
		for _, c := range cs {
			if c.at.After(up) && (firstAfter.IsZero() || c.at.Before(firstAfter)) {
				firstAfter = c.at
			}
		}
	}
	f.mu.Lock()
	okAt := append([]time.Time(nil), f.okAt...)
	f.mu.Unlock()
	for i, id := range fired {
		if cs := calls[id]; len(cs) > 0 {
			first := cs[0].at
			if okAt[i].Before(up) && first.After(up) {
				r.backlog = max(r.backlog, first.Sub(up))
			}
			if okAt[i].After(up) {
				r.latencyAfter = max(r.latencyAfter, first.Sub(okAt[i]))
			}
		}
		if len(calls[id]) == 0 {
			r.lost++
		}
		if len(calls[id]) > 1 {
			r.duplicated++
		}
	}
	if !firstAfter.IsZero() {
		r.resume = firstAfter.Sub(up)
	}
	if r.failed == 0 {
		t.Error("no Fire failed while the broker was down")
	}
	return r
}
