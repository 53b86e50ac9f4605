package outbox_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/outbox"
)

// TestCommittedEventsArePublishedInOrder: events of committed
// transactions reach the listener with the IDs Fire returned, in fire
// order; those of a rolled-back transaction never do.
func TestCommittedEventsArePublishedInOrder(t *testing.T) {
	w := newWorld(t)
	ob := w.outbox(outbox.Options{})
	ids := w.fire(ob, true, 1, 2, 3)
	w.fire(ob, false, 100, 101)
	ids = append(ids, w.fire(ob, true, 4)...)
	if err := ob.Start(); err != nil {
		t.Fatal(err)
	}
	got := w.waitDeliveries(4, 10*time.Second)
	for i, d := range got {
		if d.n != i+1 || d.id != ids[i] {
			t.Fatalf("delivery %d = event %d id %s, want event %d id %s (order: %s)", i, d.n, d.id, i+1, ids[i], ns(got))
		}
		if d.md[bus.MetaID] != d.id || d.md[bus.MetaType] != placed.Name() || d.md[bus.MetaSource] != "/shop" {
			t.Fatalf("metadata of %s = %v", d.id, d.md)
		}
	}
	// After a notification-driven wake-up, a later commit goes out too.
	more := w.fire(ob, true, 5)
	got = w.waitDeliveries(5, 10*time.Second)
	if got[4].id != more[0] {
		t.Fatalf("fifth delivery %s, want %s", got[4].id, more[0])
	}
	waitFor(t, 10*time.Second, "rows marked published", func() bool {
		return w.count("SELECT count(*) FROM "+ob.Table()+" WHERE published_at IS NULL") == 0
	})
	if n := w.count("SELECT count(*) FROM " + ob.Table()); n != 5 {
		t.Fatalf("%d rows retained, want 5 (the rolled-back ones never existed)", n)
	}
	if len(w.deliveries()) != 5 {
		t.Fatalf("deliveries: %s, want exactly 5", ns(w.deliveries()))
	}
}

// TestLateCommitIsNotSkipped: a transaction that fired first (smaller id)
// and commits after a later one was published is still published.
func TestLateCommitIsNotSkipped(t *testing.T) {
	w := newWorld(t)
	ob := w.outbox(outbox.Options{})
	if err := ob.Start(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	slow, err := w.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = slow.Rollback(ctx) }()
	slowID, err := outbox.Fire(ctx, slow, ob, placed, order{1})
	if err != nil {
		t.Fatal(err)
	}
	fast := w.fire(ob, true, 2)
	got := w.waitDeliveries(1, 10*time.Second)
	if got[0].id != fast[0] {
		t.Fatalf("first delivery %s, want the committed %s", got[0].id, fast[0])
	}
	if err := slow.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got = w.waitDeliveries(2, 10*time.Second)
	if got[1].id != slowID {
		t.Fatalf("second delivery %s, want the late commit %s", got[1].id, slowID)
	}
}

// TestOneActiveRelay: of two relays on one table — spelled differently —
// exactly one is active; when it stops the other takes over and publishes
// what follows.
func TestOneActiveRelay(t *testing.T) {
	w := newWorld(t)
	a := w.outbox(outbox.Options{})
	b := w.outbox(outbox.Options{Table: "public." + w.table})
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the first relay active", a.Active)
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	w.fire(a, true, 1)
	w.waitDeliveries(1, 10*time.Second)
	if b.Active() {
		t.Fatal("both relays active")
	}
	// A standby stops at once when closed, though it waits for the lock.
	c := w.outbox(outbox.Options{})
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error)
	go func() { closed <- c.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("closing a standby relay hangs")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the standby relay active", b.Active)
	w.fire(b, true, 2)
	got := w.waitDeliveries(2, 10*time.Second)
	if len(got) != 2 || got[1].n != 2 {
		t.Fatalf("deliveries %s, want 1 2", ns(got))
	}
}

// TestRetention: published rows are deleted after Retention; with a
// negative Retention at once.
func TestRetention(t *testing.T) {
	for _, tc := range []struct {
		name      string
		retention time.Duration
	}{{"short", 50 * time.Millisecond}, {"none", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			ob := w.outbox(outbox.Options{Retention: tc.retention, CleanupInterval: 20 * time.Millisecond, PollInterval: 20 * time.Millisecond})
			w.fire(ob, true, 1, 2)
			if err := ob.Start(); err != nil {
				t.Fatal(err)
			}
			w.waitDeliveries(2, 10*time.Second)
			waitFor(t, 10*time.Second, "published rows deleted", func() bool {
				return w.count("SELECT count(*) FROM "+ob.Table()) == 0
			})
		})
	}
}

// TestMigrate: the table is created by Migrate from many callers at once,
// Migrate is idempotent, and New refuses a missing or older table.
func TestMigrate(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	_, err := outbox.New(ctx, w.bus, w.pool, outbox.Options{Table: w.table})
	if !errors.Is(err, outbox.ErrNoTable) {
		t.Fatalf("New on a missing table: %v, want ErrNoTable", err)
	}
	errs := make(chan error, 4)
	for range 4 {
		go func() { errs <- outbox.Migrate(ctx, w.pool, w.table) }()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := outbox.New(ctx, w.bus, w.pool, outbox.Options{Table: w.table}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.pool.Exec(ctx, "COMMENT ON TABLE "+w.table+" IS NULL"); err != nil {
		t.Fatal(err)
	}
	if _, err := outbox.New(ctx, w.bus, w.pool, outbox.Options{Table: w.table}); !errors.Is(err, outbox.ErrOldSchema) {
		t.Fatalf("New on an unversioned table: %v, want ErrOldSchema", err)
	}
	if err := outbox.Migrate(ctx, w.pool, w.table); err != nil {
		t.Fatal(err)
	}
	if _, err := outbox.New(ctx, w.bus, w.pool, outbox.Options{Table: w.table}); err != nil {
		t.Fatal(err)
	}
	if _, err := outbox.Schema("bad-name"); err == nil {
		t.Fatal("Schema accepted a bad table name")
	}
}

// TestWakeUp: a commit wakes the relay through LISTEN/NOTIFY long before
// its poll; without notifications the poll finds the rows.
func TestWakeUp(t *testing.T) {
	t.Run("notify", func(t *testing.T) {
		w := newWorld(t)
		ob := w.outbox(outbox.Options{PollInterval: time.Hour})
		if err := ob.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the relay active", ob.Active)
		for n := range 3 {
			w.fire(ob, true, n)
			w.waitDeliveries(n+1, 30*time.Second) // far below the hour of the poll
		}
	})
	t.Run("poll", func(t *testing.T) {
		w := newWorld(t)
		ob := w.outbox(outbox.Options{DisableNotify: true, PollInterval: 20 * time.Millisecond})
		if err := ob.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the relay active", ob.Active)
		w.fire(ob, true, 1, 2)
		w.waitDeliveries(2, 30*time.Second)
	})
}

// TestCleanupDoesNotHoldUpPublishing: the relay deletes expired rows a
// chunk (10 batches' worth) at a time between batches, so a large
// clean-up (a day of events at a high rate, or the first after an outage)
// does not keep new events waiting until it is over.
func TestCleanupDoesNotHoldUpPublishing(t *testing.T) {
	w := newWorld(t)
	const batch, old = 10, 2000
	ob := w.outbox(outbox.Options{BatchSize: batch, Retention: time.Hour})
	ctx := context.Background()
	if _, err := w.pool.Exec(ctx, `INSERT INTO `+ob.Table()+` (event_id, event, payload, metadata, created_at, published_at)
SELECT 'old-' || i, 'x', '', '{}', now() - interval '2 days', now() - interval '2 days' FROM generate_series(1, $1) i`, old); err != nil {
		t.Fatal(err)
	}
	expired := make(chan int, 1)
	outbox.SetAfterPublish(ob, func(conn *pgx.Conn) {
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+ob.Table()+" WHERE published_at IS NOT NULL").Scan(&n); err != nil {
			t.Error(err)
		}
		select {
		case expired <- n:
		default:
		}
	})
	w.fire(ob, true, 1)
	if err := ob.Start(); err != nil {
		t.Fatal(err)
	}
	w.waitDeliveries(1, 10*time.Second)
	if n := <-expired; n < old-10*batch {
		t.Errorf("%d of %d expired rows left when the relay published its first batch: the clean-up ran first", n, old)
	}
	waitFor(t, 10*time.Second, "the expired rows deleted", func() bool {
		return w.count("SELECT count(*) FROM "+ob.Table()+" WHERE event_id LIKE 'old-%'") == 0
	})
}
