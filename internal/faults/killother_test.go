package faults

import (
	"fmt"
	"testing"
	"time"

	"github.com/busline/busline/bus"
)

// TestKillOtherName: a listener process "a" is killed with SIGKILL
// mid-stream and a process with another name, "b", joins the group.
// Every fired event is handled; the events pending for "a" are handled by
// "b" (Redis: claimed once idle longer than AckTimeout, 2s here; RabbitMQ:
// at once, as the broker returns a dead connection's unacknowledged
// deliveries to the queue); duplicates only among "a"'s pending events;
// nothing stays pending for "a".
func TestKillOtherName(t *testing.T) {
	for _, kind := range []string{"redis", "amqp"} {
		t.Run(kind, func(t *testing.T) {
			checkLeaks(t)
			var tg *target
			if kind == "redis" {
				tg = redisTarget(t, "", "")
			} else {
				tg = amqpTarget(t, "", "")
			}
			r := killOtherName(t, tg)
			t.Logf("%s kill -9 then another name: %s", kind, r)
		})
	}
}

type reclaimReport struct {
	fired, handled, duplicated, lost int
	pendingAtKill                    int
	reclaimMin, reclaimMax           time.Duration // kill to b's handling of a's pending events
	leftForA                         int
}

func (r reclaimReport) String() string {
	s := fmt.Sprintf("fired %d, handled %d, lost %d, duplicated %d", r.fired, r.handled, r.lost, r.duplicated)
	if r.pendingAtKill >= 0 {
		s += fmt.Sprintf(", pending for a at the kill %d, reclaimed by b %s to %s after the kill, left pending for a %d",
			r.pendingAtKill, r.reclaimMin.Round(time.Millisecond), r.reclaimMax.Round(time.Millisecond), r.leftForA)
	} else {
		s += fmt.Sprintf(", events fired before the kill and first handled by b: %s to %s after the kill",
			r.reclaimMin.Round(time.Millisecond), r.reclaimMax.Round(time.Millisecond))
	}
	return s
}

func killOtherName(t *testing.T, tg *target) reclaimReport {
	const (
		concurrency = 8
		ackTimeout  = 2 * time.Second
	)
	dir := t.TempDir()
	spec := func(process string) childSpec {
		s := tg.child(process, outFile(dir, process))
		s.AckTimeout, s.Concurrency, s.Work = ackTimeout, concurrency, 2*time.Millisecond
		return s
	}
	a := startChild(t, spec("a"))
	waitFor(t, 30*time.Second, "the listener to join its group", tg.ready)
	pub := newBus(t, bus.Config{Service: tg.service, Transport: tg.url})
	f := startFiring(t, pub, scale.killEvents/2, 10, 5*time.Millisecond)
	waitFor(t, time.Minute, "a to handle events", func() bool { return countHandled(outFile(dir, "a")) >= scale.killEvery })
	a.kill()
	killAt := time.Now()
	pending, inspectable := tg.pending("a")
	b := startChild(t, spec("b"))
	f.wait(t, 2*time.Minute)
	fired := f.fired()
	if _, failed := f.counts(); failed > 0 {
		t.Fatalf("%d Fire calls failed with the broker up: %v", failed, f.lastErr)
	}
	files := []string{outFile(dir, "a"), outFile(dir, "b")}
	waitHandled(t, fired, files, time.Minute)
	if inspectable {
		// a may have handled its last events and died before acking them:
		// every event is handled, yet b has still to claim those entries
		// once they are idle for AckTimeout. Wait for that, not only for
		// the handling.
		waitFor(t, time.Minute, "b to claim what a left pending", func() bool {
			n, _ := tg.pendingCount("a", 0)
			return n == 0
		})
	}
	if err, ok := b.terminate(30 * time.Second); !ok || err != nil {
		t.Errorf("b on SIGTERM: exited %v, error %v", ok, err)
	}

	recs := readRecords(t, files...)
	byID := handledBy(recs)
	r := reclaimReport{fired: len(fired), handled: len(byID), pendingAtKill: -1}
	for _, id := range fired {
		if len(byID[id]) == 0 {
			r.lost++
		}
	}
	if r.lost > 0 {
		t.Errorf("%d of %d fired events never handled", r.lost, r.fired)
	}
	dupRuns := 0
	for id, rs := range byID {
		if len(rs) > 1 {
			r.duplicated++
			dupRuns += len(rs) - 1
			if inspectable && !pending[id] {
				t.Errorf("event %s handled %d times but was not pending for the killed process", id, len(rs))
			}
		}
	}
	if !inspectable && dupRuns > concurrency {
		t.Errorf("%d extra handler runs after one kill; at most %d (Concurrency) expected", dupRuns, concurrency)
	}
	// When did b handle what a held? Redis: a's pending entries; RabbitMQ:
	// the events fired before the kill that a had not handled.
	held := pending
	if !inspectable {
		held = map[string]bool{}
		for _, id := range fired {
			if rs := byID[id]; len(rs) > 0 && rs[0].process == "b" && f.firedBefore(id, killAt) {
				held[id] = true
			}
		}
	}
	first := true
	for _, rec := range recs {
		if rec.kind != "H" || rec.process != "b" || !held[rec.id] {
			continue
		}
		d := rec.at.Sub(killAt)
		if first || d < r.reclaimMin {
			r.reclaimMin = d
		}
		if first || d > r.reclaimMax {
			r.reclaimMax = d
		}
		first = false
	}
	if inspectable {
		r.pendingAtKill = len(pending)
		n, _ := tg.pendingCount("a", 0)
		r.leftForA = n
		if n != 0 {
			t.Errorf("%d entries still pending for the killed consumer a after b handled everything", n)
		}
		for id := range pending {
			if len(byID[id]) == 0 {
				t.Errorf("event %s pending for a at the kill was never handled", id)
			}
		}
	}
	return r
}
