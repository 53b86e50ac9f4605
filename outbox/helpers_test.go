package outbox_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/internal/brokertest"
	"github.com/busline/busline/outbox"
	"github.com/busline/busline/transports/memory"
)

type order struct {
	N int `json:"n"`
}

var placed = bus.NewEvent[order]("shop", "order_placed")

// tableName returns an outbox table name private to the test, dropped
// afterwards.
func tableName(t testing.TB, p *pgxpool.Pool) string {
	name := "busline_outbox_t" + strings.ToLower(rand.Text()[:12])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := p.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{name}.Sanitize()); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	return name
}

// delivery is what the recording listener saw.
type delivery struct {
	id string
	n  int
	md map[string]string
}

// world is a bus on a private memory broker with a recording listener,
// and an outbox on a private table of the test database.
type world struct {
	t     testing.TB
	pool  *pgxpool.Pool
	bus   *bus.Bus
	table string

	mu   sync.Mutex
	got  []delivery
	more chan struct{}
}

// newWorld starts the bus (its listener records every delivery, without
// deduplication) and returns it with a fresh outbox table name.
func newWorld(t testing.TB, configure ...func(*bus.Config)) *world {
	t.Helper()
	w := &world{t: t, pool: brokertest.Postgres(t), more: make(chan struct{}, 1)}
	w.table = tableName(t, w.pool)
	name := "outbox-" + rand.Text()[:8]
	t.Cleanup(func() { memory.Forget(name) })
	cfg := bus.Config{Service: "shop", Transport: "memory://" + name}
	for _, f := range configure {
		f(&cfg)
	}
	b, err := bus.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	w.bus = b
	err = bus.Listen(b, placed, "record", func(_ context.Context, d bus.Delivery[order]) error {
		w.mu.Lock()
		w.got = append(w.got, delivery{id: d.ID, n: d.Payload.N, md: d.Metadata})
		w.mu.Unlock()
		select {
		case w.more <- struct{}{}:
		default:
		}
		return nil
	}, bus.WithConcurrency(1), func(o *bus.ListenerOptions) { o.DisableIdempotency = true })
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return w
}

// outbox opens an outbox of the world's bus on its table.
func (w *world) outbox(opts outbox.Options) *outbox.Outbox {
	w.t.Helper()
	if opts.Table == "" {
		opts.Table = w.table
	}
	opts.AutoMigrate = true
	if opts.PollInterval == 0 {
		opts.PollInterval = 200 * time.Millisecond
	}
	ob, err := outbox.New(context.Background(), w.bus, w.pool, opts)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = ob.Close() })
	return ob
}

// fire fires one event per n in a transaction, commits it when commit,
// else rolls it back, and returns the IDs.
func (w *world) fire(ob *outbox.Outbox, commit bool, ns ...int) []string {
	w.t.Helper()
	ctx := context.Background()
	tx, err := w.pool.Begin(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	var ids []string
	for _, n := range ns {
		id, err := outbox.Fire(ctx, tx, ob, placed, order{n})
		if err != nil {
			w.t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if commit {
		if err := tx.Commit(ctx); err != nil {
			w.t.Fatal(err)
		}
	}
	return ids
}

// waitDeliveries waits until the listener has seen at least n deliveries
// and returns them.
func (w *world) waitDeliveries(n int, within time.Duration) []delivery {
	w.t.Helper()
	deadline := time.After(within)
	for {
		w.mu.Lock()
		got := append([]delivery(nil), w.got...)
		w.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-w.more:
		case <-deadline:
			w.t.Fatalf("timed out after %s: %d deliveries, want %d", within, len(got), n)
		}
	}
}

// deliveries returns what the listener has seen so far.
func (w *world) deliveries() []delivery {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]delivery(nil), w.got...)
}

// count runs a count query.
func (w *world) count(sql string, args ...any) int {
	w.t.Helper()
	var n int
	if err := w.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		w.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// waitFor polls cond every 10ms until it holds or within passes.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ns(ds []delivery) string {
	var b strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&b, "%d ", d.n)
	}
	return b.String()
}
