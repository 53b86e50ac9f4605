package faults

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/busline/busline/bus"
)

// killReport is what a kill test measured, logged in the form of the
// tables of docs/reliability.md.
type killReport struct {
	fired, handled, duplicated, lost int
	dupRuns                          int             // handler runs beyond the first, summed over events
	pendingAtKill                    []int           // entries pending for the killed process (Redis)
	recovery                         []time.Duration // restart (exec) to the last of its pending events handled
	recoveryBoot                     []time.Duration // the same from the restarted process's main
	effects, dupEffects              int             // Postgres effect rows, events with more than one
}

func (r killReport) String() string {
	s := fmt.Sprintf("fired %d, handled %d, lost %d, duplicated events %d (extra runs %d)",
		r.fired, r.handled, r.lost, r.duplicated, r.dupRuns)
	if len(r.pendingAtKill) > 0 {
		s += fmt.Sprintf(", pending at each kill %v", r.pendingAtKill)
	}
	if len(r.recovery) > 0 {
		s += fmt.Sprintf(", redelivery after restart (from exec) %v, (from main) %v", round(r.recovery), round(r.recoveryBoot))
	}
	if r.effects > 0 {
		s += fmt.Sprintf(", effect rows %d, events with duplicate effects %d", r.effects, r.dupEffects)
	}
	return s
}

func round(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// killOptions vary the kill tests.
type killOptions struct {
	postgres   bool // the Postgres idempotency store, effects written through pgstore.Tx
	redisStore bool // the Redis idempotency store (lease = AckTimeout = 3s)
}

// TestKillSameName: a listener process is killed with SIGKILL mid-stream
// and restarted with the same process name, several times, while events
// keep being fired. Every event whose Fire returned nil is handled; an
// event is handled twice only if it was pending for the killed process
// (Redis: checked against XPENDING taken right after the kill; RabbitMQ:
// at most Concurrency per kill, the prefetch); on Redis the restarted
// process gets the killed one's pending events within 1 s although the
// AckTimeout is 60 s (own pending first). With the Postgres store every
// event has exactly one effect row. With the Redis store an event is
// handled twice only if the killed process had finished its handler (not
// committed it), and the events whose lease the killed process held are
// handled at once too: the restarted process takes over its dead earlier
// run's leases.
func TestKillSameName(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind string
		opts killOptions
	}{
		{"redis", "redis", killOptions{}},
		{"redis-postgres", "redis", killOptions{postgres: true}},
		{"redis-redisstore", "redis", killOptions{redisStore: true}},
		{"amqp", "amqp", killOptions{}},
		{"amqp-postgres", "amqp", killOptions{postgres: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			var tg *target
			if tc.kind == "redis" {
				tg = redisTarget(t, "", "")
			} else {
				tg = amqpTarget(t, "", "")
			}
			r := killSameName(t, tg, tc.opts)
			t.Logf("%s kill -9 same name: %s", tc.name, r)
		})
	}
}

func killSameName(t *testing.T, tg *target, o killOptions) killReport {
	const concurrency = 8
	dir := t.TempDir()
	spec := tg.child("p1", "")
	spec.AckTimeout = time.Minute // long: redelivery must not wait for it
	spec.Concurrency = concurrency
	spec.Work = 2 * time.Millisecond
	var effects string
	// Without a store option, the per-process memory store (a redis://
	// transport would otherwise dedup in the same Redis by default, which
	// is the redisStore case).
	spec.Idempotency = "memory://"
	if o.postgres {
		p := needPostgres(t)
		effects = pgTable(t, p, "effects", "event_id text NOT NULL, process text NOT NULL")
		dedup := pgTable(t, p, "dedup", "")
		spec.Idempotency = withQuery(pgURL(), "table="+dedup+"&migrate=true")
		spec.Effects = effects
	}
	if o.redisStore {
		spec.AckTimeout = 3 * time.Second
		spec.Idempotency = "redis://" + redisAddr() + "/0?prefix=" + url.QueryEscape(tg.prefix+"dedup:")
	}
	files := []string{}
	start := func(i int) *child {
		s := spec
		s.Out = outFile(dir, fmt.Sprintf("p1-%d", i))
		files = append(files, s.Out)
		return startChild(t, s)
	}
	t0 := time.Now()
	phase := func(what string) { t.Logf("%6s %s", time.Since(t0).Round(time.Millisecond), what) }
	cur := start(0)
	waitFor(t, 30*time.Second, "the listener to join its group", tg.ready)
	phase("listener ready")

	pub := newBus(t, bus.Config{Service: tg.service, Transport: tg.url})
	f := startFiring(t, pub, scale.killEvents, 10, 5*time.Millisecond)

	var rep killReport
	pendingSets := []map[string]bool{}
	restarts := []*child{}
	for k := 0; k < scale.kills; k++ {
		file := files[len(files)-1]
		waitFor(t, 60*time.Second, "the listener to handle events before the kill", func() bool {
			return countHandled(file) >= scale.killEvery
		})
		cur.kill()
		phase(fmt.Sprintf("kill %d", k+1))
		if set, ok := tg.pending("p1"); ok {
			pendingSets = append(pendingSets, set)
			rep.pendingAtKill = append(rep.pendingAtKill, len(set))
		}
		cur = start(k + 1)
		restarts = append(restarts, cur)
	}
	f.wait(t, 2*time.Minute)
	phase("fired all")
	fired := f.fired()
	if _, failed := f.counts(); failed > 0 {
		t.Fatalf("%d Fire calls failed with the broker up: %v", failed, f.lastErr)
	}
	waitHandled(t, fired, files, time.Minute)
	phase("handled all")
	if err, ok := cur.terminate(30 * time.Second); !ok || err != nil {
		t.Errorf("last listener on SIGTERM: exited %v, error %v", ok, err)
	}
	phase("stopped")

	recs := readRecords(t, files...)
	byID := handledBy(recs)
	rep.fired = len(fired)
	rep.handled = len(byID)
	for _, id := range fired {
		if len(byID[id]) == 0 {
			rep.lost++
		}
	}
	var allPending = map[string]bool{}
	for _, s := range pendingSets {
		for id := range s {
			allPending[id] = true
		}
	}
	for id, rs := range byID {
		if len(rs) > 1 {
			rep.duplicated++
			rep.dupRuns += len(rs) - 1
			if tg.kind == "redis" && !allPending[id] && !o.postgres {
				t.Errorf("event %s handled %d times but was not pending for a killed process", id, len(rs))
			}
			if o.redisStore && !finishedByKilled(rs, restarts) {
				t.Errorf("event %s handled %d times with the Redis store, but no killed process had finished it", id, len(rs))
			}
		}
	}
	if rep.lost > 0 {
		t.Errorf("%d of %d fired events never handled", rep.lost, rep.fired)
	}
	if tg.kind == "amqp" && rep.dupRuns > scale.kills*concurrency {
		t.Errorf("%d extra handler runs after %d kills; at most %d (Concurrency per kill) expected", rep.dupRuns, scale.kills, scale.kills*concurrency)
	}
	// Redis: the pending events of kill k come back to incarnation k+1 at once.
	for k, set := range pendingSets {
		c := restarts[k]
		// With a shared store (Postgres, Redis), a pending event the killed
		// process had committed (its XACK was not sent yet) is acknowledged
		// after the restart without running: only the others must run again.
		want := map[string]bool{}
		for id := range set {
			want[id] = true
		}
		if o.postgres || o.redisStore {
			for _, r := range recs {
				if r.kind == "H" && r.at.Before(c.startAt) {
					delete(want, r.id)
				}
			}
		}
		var last time.Time
		got := map[string]bool{}
		for _, r := range recs {
			if r.kind == "H" && want[r.id] && !got[r.id] && r.at.After(c.startAt) {
				got[r.id] = true
				if r.at.After(last) {
					last = r.at
				}
			}
		}
		if len(got) < len(want) {
			t.Errorf("kill %d: %d of the %d events pending for the killed process were not handled after the restart", k+1, len(want)-len(got), len(want))
		}
		if len(got) == 0 {
			continue
		}
		rep.recovery = append(rep.recovery, last.Sub(c.startAt))
		rep.recoveryBoot = append(rep.recoveryBoot, last.Sub(c.boot()))
		// With the Redis store too: the restarted process takes over the
		// leases of its dead earlier run at once (idempotency.Holder).
		// "At once" is judged against AckTimeout (a minute): a quiet
		// machine takes 0.2-0.6 s, a CI machine loaded by -race runs of
		// other packages took 1.3 s once, hence 5 s, still a twelfth of
		// AckTimeout (the report prints the figure measured).
		if d := last.Sub(c.boot()); d >= 5*time.Second {
			t.Errorf("kill %d: the killed process's pending events came back %s after the restarted process started; want < 5s (AckTimeout is %s)", k+1, d, spec.AckTimeout)
		}
	}
	if o.postgres {
		rep.effects, rep.dupEffects = checkEffects(t, effects, fired)
	}
	return rep
}

// finishedByKilled reports whether a killed incarnation (every one but the
// last) wrote an H line of the event: its handler had finished.
func finishedByKilled(rs []record, restarts []*child) bool {
	if len(restarts) == 0 {
		return false
	}
	last := restarts[len(restarts)-1].startAt
	for _, r := range rs {
		if r.at.Before(last) {
			return true
		}
	}
	return false
}

// waitHandled waits until every ID has an H line in the files.
func waitHandled(t testing.TB, ids []string, files []string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		byID := handledBy(readRecords(t, files...))
		missing := 0
		var example string
		for _, id := range ids {
			if len(byID[id]) == 0 {
				missing++
				example = id
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d fired events not handled within %s (for example %s)", missing, len(ids), within, example)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkEffects counts the effect rows per event: every fired event must
// have exactly one. It returns the rows and the events with more than one.
func checkEffects(t testing.TB, table string, fired []string) (rows, dup int) {
	t.Helper()
	p := needPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := p.Query(ctx, "SELECT event_id, count(*) FROM "+table+" GROUP BY event_id")
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for res.Next() {
		var id string
		var n int
		if err := res.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		counts[id] = n
		rows += n
		if n > 1 {
			dup++
		}
	}
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	missing := 0
	for _, id := range fired {
		if counts[id] == 0 {
			missing++
		}
	}
	if dup > 0 {
		bad := []string{}
		for id, n := range counts {
			if n > 1 {
				bad = append(bad, fmt.Sprintf("%s×%d", id, n))
			}
		}
		slices.Sort(bad)
		t.Errorf("%d events have more than one effect row with the Postgres store: %v", dup, bad[:min(5, len(bad))])
	}
	if missing > 0 {
		t.Errorf("%d of %d fired events have no effect row", missing, len(fired))
	}
	return rows, dup
}
