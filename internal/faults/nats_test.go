package faults

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/internal/brokertest"
	bnats "github.com/busline/busline/transports/nats"
)

// natsTarget is a target on the NATS server at base (the shared test
// server when empty), under a stream prefix of the test's own; every
// stream under it is deleted when the test ends. JetStream keeps a
// group's unacknowledged messages for the group's consumer as a whole, so
// pending per process is unknown.
func natsTarget(t testing.TB, base string) *target {
	t.Helper()
	if base == "" {
		brokertest.NATS(t)
		base = brokertest.NATSURL()
	}
	prefix := "blfaults-" + randomName(8)
	service := "svc-" + randomName(6)
	tg := &target{kind: "nats", url: withQuery(base, "prefix="+url.QueryEscape(prefix)), service: service, group: service + "-" + listenerName, prefix: prefix}
	js := natsJS(t, base)
	tg.js = js
	t.Cleanup(func() { deleteNATSPrefix(t, js, prefix) })
	opts := bnats.DefaultOptions()
	opts.Prefix = prefix
	tg.ready = func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := js.Consumer(ctx, opts.StreamName(ticked.Name()), bnats.ConsumerName(tg.group))
		return err == nil
	}
	tg.pending = func(string) (map[string]bool, bool) { return nil, false }
	tg.pendingCount = func(string, time.Duration) (int, int) { return -1, -1 }
	return tg
}

// natsStreamIDs counts the copies of each event ID in the stream of
// ticked.
func natsStreamIDs(t testing.TB, tg *target) map[string]int {
	out := map[string]int{}
	for id, ats := range natsStoredAt(t, tg) {
		out[id] = len(ats)
	}
	return out
}

// natsStoredAt returns the JetStream timestamps of every copy of each
// event ID in the stream of ticked.
func natsStoredAt(t testing.TB, tg *target) map[string][]time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := bnats.DefaultOptions()
	opts.Prefix = tg.prefix
	s, err := tg.js.Stream(ctx, opts.StreamName(ticked.Name()))
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]time.Time{}
	for more := true; more; {
		batch, err := c.FetchNoWait(1000)
		if err != nil {
			t.Fatal(err)
		}
		more = false
		for m := range batch.Messages() {
			md, _ := m.Metadata()
			id := m.Headers().Get(bnats.HeaderUUID)
			out[id] = append(out[id], md.Timestamp)
			more = md.NumPending > 0
		}
	}
	return out
}

// groupPending returns the unacknowledged messages of the target's group.
func groupPending(t testing.TB, js jetstream.JetStream, tg *target) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	opts := bnats.DefaultOptions()
	opts.Prefix = tg.prefix
	c, err := js.Consumer(ctx, opts.StreamName(ticked.Name()), bnats.ConsumerName(tg.group))
	if err != nil {
		t.Fatalf("consumer of %s: %v", tg.group, err)
	}
	return c.CachedInfo().NumAckPending
}

// natsJS connects to the server of raw for the test's own checks.
func natsJS(t testing.TB, raw string) jetstream.JetStream {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	servers, opts, err := bnats.ConnectOptions(u)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := natsgo.Connect(servers, append(opts, natsgo.MaxReconnects(-1), natsgo.ReconnectWait(100*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func deleteNATSPrefix(t testing.TB, js jetstream.JetStream, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var del []string
	for n := range js.StreamNames(ctx).Name() {
		if strings.HasPrefix(n, prefix+"_") || n == "KV_"+prefix+"_records" {
			del = append(del, n)
		}
	}
	for _, n := range del {
		if err := js.DeleteStream(ctx, n); err != nil {
			t.Logf("cleanup: delete stream %s: %v", n, err)
		}
	}
}

// TestKillNATS: a listener process on NATS JetStream is killed with
// SIGKILL mid-stream and restarted with the same process name, several
// times, while events keep being fired. Every event whose Fire returned
// nil is handled. JetStream keeps what a process held for the group's
// consumer, not for the process: the killed process's unacknowledged
// events come back after AckWait (here 2s), to whichever process pulls
// (the restarted one). An event is handled twice only if the killed
// process held it: at most Concurrency per kill, as the engine reads only
// what its slots can hand out.
func TestKillNATS(t *testing.T) {
	checkLeaks(t)
	const concurrency = 8
	tg := natsTarget(t, "")
	dir := t.TempDir()
	spec := tg.child("p1", "")
	spec.AckTimeout = 2 * time.Second
	spec.Concurrency = concurrency
	spec.Work = 2 * time.Millisecond
	var files []string
	start := func(i int) *child {
		s := spec
		s.Out = outFile(dir, fmt.Sprintf("p1-%d", i))
		files = append(files, s.Out)
		return startChild(t, s)
	}
	cur := start(0)
	waitFor(t, 30*time.Second, "the listener to join its group", tg.ready)
	pub := newBus(t, bus.Config{Service: tg.service, Transport: tg.url})
	f := startFiring(t, pub, scale.killEvents, 10, 5*time.Millisecond)
	js := natsJS(t, brokertest.NATSURL())
	var rep killReport
	var restarts []*child
	for k := 0; k < scale.kills; k++ {
		file := files[len(files)-1]
		waitFor(t, 60*time.Second, "the listener to handle events before the kill", func() bool {
			return countHandled(file) >= scale.killEvery
		})
		cur.kill()
		rep.pendingAtKill = append(rep.pendingAtKill, groupPending(t, js, tg))
		cur = start(k + 1)
		restarts = append(restarts, cur)
	}
	f.wait(t, 2*time.Minute)
	fired := f.fired()
	if _, failed := f.counts(); failed > 0 {
		t.Fatalf("%d Fire calls failed with the broker up: %v", failed, f.lastErr)
	}
	waitHandled(t, fired, files, time.Minute)
	if err, ok := cur.terminate(30 * time.Second); !ok || err != nil {
		t.Errorf("last listener on SIGTERM: exited %v, error %v", ok, err)
	}
	recs := readRecords(t, files...)
	byID := handledBy(recs)
	rep.fired, rep.handled = len(fired), len(byID)
	for _, id := range fired {
		if len(byID[id]) == 0 {
			rep.lost++
		}
	}
	for _, rs := range byID {
		if len(rs) > 1 {
			rep.duplicated++
			rep.dupRuns += len(rs) - 1
			// A redelivery after a kill is attempt 2 or more.
			if rs[len(rs)-1].attempt < 2 {
				t.Errorf("event %s handled again with attempt %d", rs[0].id, rs[len(rs)-1].attempt)
			}
		}
	}
	if rep.lost > 0 {
		t.Errorf("%d of %d fired events never handled", rep.lost, rep.fired)
	}
	if rep.dupRuns > scale.kills*concurrency {
		t.Errorf("%d extra handler runs after %d kills; at most %d (Concurrency per kill) expected", rep.dupRuns, scale.kills, scale.kills*concurrency)
	}
	// The killed process's events come back once AckWait passed: the last
	// redelivery (attempt >= 2) each restarted process handled, from its exec.
	for k, c := range restarts {
		var last time.Time
		for _, r := range recs {
			if r.kind == "H" && r.attempt >= 2 && r.process == c.Spec.Process && r.at.After(c.startAt) && (k+1 == len(restarts) || r.at.Before(restarts[k+1].startAt)) && r.at.After(last) {
				last = r.at
			}
		}
		if !last.IsZero() {
			rep.recovery = append(rep.recovery, last.Sub(c.startAt))
			rep.recoveryBoot = append(rep.recoveryBoot, last.Sub(c.boot()))
		}
	}
	t.Logf("nats kill -9 same name (AckTimeout %s; pending at kill is the group's): %s", spec.AckTimeout, rep)
}

// TestBrokerRestartNATS restarts a nats-server of the test's own (file
// store in a temp dir) with SIGKILL while events are fired and handled:
// Fire during the outage returns an error, the listener reconnects and
// resumes, and every event whose Fire returned nil is handled (the stream
// and the consumer are on disk).
func TestBrokerRestartNATS(t *testing.T) {
	checkLeaks(t)
	srv := brokertest.StartNATSServer(t)
	tg := natsTarget(t, srv.URL())
	r := brokerRestart(t, tg, func() { srv.Stop(syscall.SIGKILL) }, func() {
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("nats restart (SIGKILL, file store): %s", r)
}
