package faults

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/busline/busline/outbox"
)

// TestOutboxFaults runs the transactional outbox end to end on a
// PostgreSQL server and a redis-server of the test's own: firer processes
// commit (and roll back every fifth) transactions that insert an order and
// fire ticked through the outbox; relay processes publish the outbox to
// Redis (one active, one on standby); a listener process handles ticked
// with the Postgres idempotency store, writing one effect row per handler
// run through pgstore.Tx. Mid-stream the test kills a firer with SIGKILL,
// kills the active relay with SIGKILL (the standby takes over), restarts
// PostgreSQL (immediate shutdown, crash recovery) and restarts Redis
// (SIGKILL, AOF). In the end the effects equal the committed orders: every
// committed order has exactly one effect row (0 lost, 0 duplicated) and no
// effect belongs to a rolled-back transaction.
func TestOutboxFaults(t *testing.T) {
	checkLeaks(t)
	pg, err := StartPostgresServer(t.TempDir())
	if err == ErrNoPostgresServer {
		unavailable(t, "PostgreSQL server binaries are not installed (apt-get install postgresql): the outbox fault test starts a server of its own")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Stop(syscall.SIGQUIT) })
	rs, err := StartRedisServer(t.TempDir())
	if err == ErrNoRedisServer {
		unavailable(t, "redis-server is not on PATH: install Redis (apt-get install redis-server) to run the outbox fault test")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Stop(syscall.SIGKILL) })
	tg := redisTarget(t, rs.Addr(), "")

	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, `CREATE TABLE orders (n int PRIMARY KEY, event_id text NOT NULL);
CREATE TABLE effects (event_id text NOT NULL, process text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if err := outbox.Migrate(ctx, pool, ""); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t0 := time.Now()
	phase := func(what string) { t.Logf("%6s %s", time.Since(t0).Round(time.Millisecond), what) }

	// The listener: Postgres dedup, one effect row per handler run.
	ls := tg.child("l1", outFile(dir, "l1"))
	ls.Idempotency = withQuery(pg.URL(), "table=dedup&migrate=true")
	ls.Effects = "effects"
	listener := startChild(t, ls)
	waitFor(t, 30*time.Second, "the listener to join its group", tg.ready)
	phase("listener ready")

	relay := func() *outboxProc {
		return startOutboxProc(t, outboxSpec{Role: "relay", Postgres: pg.URL(), Transport: tg.url, Service: tg.service})
	}
	var firerFiles []string
	firer := func(name string, from int) *outboxProc {
		out := filepath.Join(dir, name+".out")
		firerFiles = append(firerFiles, out)
		return startOutboxProc(t, outboxSpec{Role: "firer", Postgres: pg.URL(), Service: tg.service, Orders: "orders", From: from, Out: out})
	}
	// count returns the result of a count query, waiting out a restart.
	count := func(sql string) int {
		t.Helper()
		var n int
		waitFor(t, 30*time.Second, "PostgreSQL to answer", func() bool {
			c, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			return pool.QueryRow(c, sql).Scan(&n) == nil
		})
		return n
	}
	effects := func() int { return count("SELECT count(*) FROM effects") }
	// progress waits for 100 more effect rows: events keep flowing from
	// the firers' transactions to the listener's effects.
	progress := func(what string) {
		t.Helper()
		from := effects()
		waitFor(t, 30*time.Second, "events to flow "+what, func() bool { return effects() >= from+100 })
	}
	const unpublished = "SELECT count(*) FROM busline_outbox WHERE published_at IS NULL"
	const published = "SELECT count(*) FROM busline_outbox WHERE published_at IS NOT NULL"

	r1 := relay()
	waitFor(t, 30*time.Second, "the first relay to take the lock", r1.isActive)
	r2 := relay()
	f1 := firer("f1", 0)
	phase("relays and firer started")

	progress("before killing the firer")
	f1.kill()
	phase("firer killed (SIGKILL)")
	f2 := firer("f2", 1_000_000)

	progress("before restarting PostgreSQL")
	pg.Stop(syscall.SIGQUIT)
	phase("PostgreSQL stopped (immediate shutdown)")
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	phase("PostgreSQL restarted")

	progress("before restarting Redis")
	rs.Stop(syscall.SIGKILL)
	phase("Redis killed (SIGKILL)")
	// The outbox keeps the events while the broker is down.
	waitFor(t, 30*time.Second, "a backlog in the outbox", func() bool { return count(unpublished) >= 100 })
	phase(fmt.Sprintf("backlog of %d events in the outbox", count(unpublished)))
	before := count(published)
	if err := rs.Start(); err != nil {
		t.Fatal(err)
	}
	phase("Redis restarted")
	// Kill the active relay while it drains the backlog. Either may hold
	// the lock since PostgreSQL restarted.
	waitFor(t, 30*time.Second, "the relay to drain the backlog", func() bool { return count(published) > before })
	var active, standby *outboxProc
	waitFor(t, 10*time.Second, "one active relay and one on standby", func() bool {
		active, standby = r1, r2
		if r2.isActive() {
			active, standby = r2, r1
		}
		return active.isActive() && !standby.isActive()
	})
	active.kill()
	killed := time.Now()
	waitFor(t, 10*time.Second, "the standby relay to take over", standby.isActive)
	takeover := time.Since(killed)
	phase(fmt.Sprintf("active relay killed (SIGKILL) draining the backlog, %d events still unpublished; the standby took over within %s",
		count(unpublished), takeover.Round(time.Millisecond)))
	relay()

	progress("after the restarts")
	f2.kill()
	phase("second firer killed (SIGKILL)")

	waitFor(t, 60*time.Second, "every committed order to have its effect", func() bool {
		return count("SELECT count(*) FROM busline_outbox WHERE published_at IS NULL") == 0 &&
			count("SELECT count(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM effects e WHERE e.event_id = o.event_id)") == 0
	})
	phase("every committed order handled")
	if err, ok := listener.terminate(30 * time.Second); !ok || err != nil {
		t.Errorf("listener on SIGTERM: exited %v, error %v", ok, err)
	}

	committed := count("SELECT count(*) FROM orders")
	lost := count("SELECT count(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM effects e WHERE e.event_id = o.event_id)")
	dup := count("SELECT count(*) FROM (SELECT event_id FROM effects GROUP BY event_id HAVING count(*) > 1) d")
	stray := count("SELECT count(*) FROM effects e WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.event_id = e.event_id)")
	rows := count("SELECT count(*) FROM busline_outbox")
	rolledBack := readIDs(t, "R", firerFiles...)
	confirmed := readIDs(t, "C", firerFiles...)
	runs := countHandled(ls.Out)
	t.Logf("committed orders %d (commits confirmed to the firers %d), rolled back %d, outbox rows %d, handler runs %d, effects %d: lost %d, duplicated %d, from rolled-back transactions %d",
		committed, len(confirmed), len(rolledBack), rows, runs, effects(), lost, dup, stray)
	entries, _ := tg.rdb.XLen(ctx, tg.stream).Result()
	t.Logf("stream entries %d for %d outbox rows: %d events published more than once (relay killed between publish and mark)", entries, rows, int(entries)-rows)
	if committed < 400 || len(rolledBack) == 0 {
		t.Fatalf("too little traffic to mean anything: %d committed, %d rolled back", committed, len(rolledBack))
	}
	if lost != 0 || dup != 0 || stray != 0 {
		t.Errorf("effects differ from the committed transactions: lost %d, duplicated %d, from rolled-back transactions %d", lost, dup, stray)
	}
	if rows != committed {
		t.Errorf("%d outbox rows for %d committed orders", rows, committed)
	}
	var missing int
	for id := range confirmed {
		if count(fmt.Sprintf("SELECT count(*) FROM orders WHERE event_id = '%s'", id)) != 1 {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d transactions whose commit returned nil have no order", missing)
	}
	for id := range rolledBack {
		if count(fmt.Sprintf("SELECT count(*) FROM effects WHERE event_id = '%s'", id)) != 0 {
			t.Errorf("event %s of a rolled-back transaction was handled", id)
		}
	}
}

// readIDs returns the event IDs of the lines of kind in the files.
func readIDs(t testing.TB, kind string, files ...string) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	for _, name := range files {
		f, err := os.Open(name)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if id, ok := strings.CutPrefix(sc.Text(), kind+" "); ok {
				ids[id] = true
			}
		}
		_ = f.Close()
	}
	return ids
}
