package transporttest

import (
	"context"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/internal/faults"
	"github.com/busline/busline/internal/procs"
)

// networked reports whether url names a broker on the network (host:port),
// which another process can reach and a proxy can stand in front of.
func networked(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	_, _, err = net.SplitHostPort(u.Host)
	return err == nil
}

// testRunPattern is the -test.run pattern that runs exactly the test name.
func testRunPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

// 6c. A crash loop (kill -9 while handlers run, ten times, the same process
// name) dead-letters no event that never reached a handler: only
// deliveries that reached the handler chain count as attempts.
func (s *suite) crashLoop(t *testing.T) {
	if raw := os.Getenv(procs.EnvChild); raw != "" {
		// This process is a listener the parent test started.
		os.Exit(procs.RunChild(raw, nil))
	}
	url := s.h.URL(t)
	if !networked(url) {
		t.Skipf("%s: the broker lives in the test process; there is no process to kill", s.h.Name)
	}
	const kills, concurrency, events = 10, 2, 12
	out := procs.OutFile(t.TempDir(), "p1")
	spec := procs.Spec{
		Transport: url, Service: "svc", Process: "p1", Listener: "work",
		Concurrency: concurrency, AckTimeout: time.Minute, Work: time.Minute,
		Out: out, Begin: true, ShutdownTimeout: time.Second,
	}
	pattern := testRunPattern(t.Name())
	ready := func(c *procs.Child) {
		t.Helper()
		eventually(t, s.h.scale(30*time.Second), "the listener process to start", func() bool {
			if c.Exited() {
				t.Fatal("the listener process exited")
			}
			return !c.Ready().IsZero()
		})
	}
	c := procs.Start(t, spec, pattern)
	ready(c)
	producer := newBus(t, url, "producer", "p0")
	began := 0
	ids := make([]string, 0, events)
	for i := range events {
		id, err := bus.Fire(context.Background(), producer, procs.Ticked, procs.Tick{N: i})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for k := range kills {
		if k > 0 {
			began = procs.CountLines("B", out)
			c = procs.Start(t, spec, pattern)
		}
		eventually(t, s.h.scale(30*time.Second), "handlers running in the listener process", func() bool {
			return procs.CountLines("B", out) >= began+concurrency
		})
		c.Kill()
	}
	spec.Work = 0
	procs.Start(t, spec, pattern)
	eventually(t, s.h.scale(60*time.Second), "every event handled or dead-lettered", func() bool {
		done := map[string]bool{}
		for _, r := range procs.ReadRecords(t, out) {
			if r.Kind == "H" {
				done[r.ID] = true
			}
		}
		for _, dl := range deadLetters(t, producer, "svc-work") {
			done[dl.Message.UUID] = true
		}
		for _, id := range ids {
			if !done[id] {
				return false
			}
		}
		return true
	})
	started := map[string]int{}
	for _, r := range procs.ReadRecords(t, out) {
		if r.Kind == "B" {
			started[r.ID]++
		}
	}
	dead := deadLetters(t, producer, "svc-work")
	for _, dl := range dead {
		if started[dl.Message.UUID] == 0 {
			t.Errorf("event %s dead-lettered (%q, attempts %d) though its handler never started", dl.Message.UUID, dl.Reason, dl.Attempts)
		}
	}
	t.Logf("%d kills: %d handler starts, %d events dead-lettered after reaching a handler", kills, procs.CountLines("B", out), len(dead))
}

// 12b. After a broken read (the connection cut while reading), a listener
// reads again at once; what the cut read took is not left waiting for
// AckTimeout, and on a broker with a pending list it is not counted as an
// attempt either.
func (s *suite) brokenRead(t *testing.T) {
	url := s.h.URL(t)
	if !networked(url) {
		t.Skipf("%s: the broker lives in the test process; there is no connection to cut", s.h.Name)
	}
	px, through := faults.Proxied(t, url)
	r := newRecorder()
	b := newBus(t, through, "svc", "p1")
	listen(t, b, itemEvent, "work", r.handler, bus.WithAckTimeout(10*time.Minute), bus.WithConcurrency(4))
	start(t, b)
	producer := newBus(t, url, "producer", "p0")
	var ids []string
	for round := range 5 {
		ids = append(ids, fire(t, producer, 20*round, 20)...)
		px.Stop() // every connection cut, some of them mid-read
		if err := px.Start(); err != nil {
			t.Fatal(err)
		}
	}
	ids = append(ids, fire(t, producer, 100, 5)...)
	deadline := time.Now().Add(s.h.scale(60 * time.Second))
	for !r.has(ids...) {
		if time.Now().After(deadline) {
			missing := 0
			for _, id := range ids {
				if r.get(id) == 0 {
					missing++
				}
			}
			t.Fatalf("%d of %d events not handled after %s, long before AckTimeout: the entries a broken read took wait for it", missing, len(ids), s.h.scale(60*time.Second))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !s.h.OwnPendingFirst {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		if att := r.attempts[id]; att[0] != 1 {
			t.Errorf("event %s first handed out as attempt %d (attempts %v), want 1: a read the cut broke counted it", id, att[0], att)
		}
	}
}

// 6d. A process restarted after more than AckTimeout of downtime counts
// each of its pending events once: its own-pending read and its claim of
// idle entries do not both count it.
func (s *suite) restartAfterAckTimeout(t *testing.T) {
	url := s.h.URL(t)
	ackTimeout := s.h.scale(300 * time.Millisecond)
	ack := bus.WithAckTimeout(ackTimeout)
	ids := s.abandon(t, url, "p1", "work", 3, ack, bus.WithConcurrency(3))
	time.Sleep(2 * ackTimeout) // the downtime
	r := newRecorder()
	b := newBus(t, url, "svc", "p1")
	listen(t, b, itemEvent, "work", r.handler, ack, bus.WithConcurrency(3))
	start(t, b)
	eventually(t, s.h.scale(20*time.Second), "the pending events in the restarted process", func() bool { return r.has(ids...) })
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		if att := r.attempts[id]; att[0] != 2 {
			t.Errorf("event %s: attempts %v after one delivery and a restart, want 2 first", id, att)
		}
	}
}
