package outbox_test

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/idempotency/pgstore"
	"github.com/busline/busline/internal/brokertest"
	"github.com/busline/busline/outbox"
	"github.com/busline/busline/transports/memory"
)

var invoiced = bus.NewEvent[order]("billing", "invoiced")

// TestFireFromHandler: a handler fires through the outbox in the
// transaction of the Postgres idempotency store (pgstore.Tx). Its first
// try fails after firing: that event rolls back with the try, and only the
// successful try's event is written and published.
func TestFireFromHandler(t *testing.T) {
	ctx := context.Background()
	pool := brokertest.Postgres(t)
	dedup := "busline_outbox_dedup_t" + strings.ToLower(rand.Text()[:12])
	t.Cleanup(func() {
		_, _ = pool.Exec(context.Background(), "DROP TABLE IF EXISTS "+pgx.Identifier{dedup}.Sanitize())
	})
	name := "outbox-chain-" + rand.Text()[:8]
	t.Cleanup(func() { memory.Forget(name) })
	b, err := bus.New(bus.Config{
		Service: "billing", Transport: "memory://" + name,
		Idempotency: withQuery(brokertest.PostgresURL(), "table="+dedup+"&migrate=true"),
		Listener:    bus.ListenerOptions{Retry: bus.RetryPolicy{Tries: 2, InitialInterval: time.Millisecond}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ob, err := outbox.New(ctx, b, pool, outbox.Options{Table: tableName(t, pool), AutoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ob.Close() })

	var tries atomic.Int32
	err = bus.Listen(b, placed, "invoice", func(ctx context.Context, d bus.Delivery[order]) error {
		if _, err := outbox.Fire(ctx, pgstore.Tx(ctx), ob, invoiced, order{d.Payload.N * 10}); err != nil {
			return err
		}
		if tries.Add(1) == 1 {
			return errors.New("first try fails after firing")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan bus.Delivery[order], 10)
	if err := bus.Listen(b, invoiced, "audit", func(_ context.Context, d bus.Delivery[order]) error {
		got <- d
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ob.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.Fire(ctx, b, placed, order{7}); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-got:
		if d.Payload.N != 70 {
			t.Fatalf("invoiced %d, want 70", d.Payload.N)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no invoiced event")
	}
	if n := tries.Load(); n != 2 {
		t.Fatalf("%d tries, want 2", n)
	}
	var rows int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+ob.Table()).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Fatalf("%d outbox rows, want 1: the failed try's event must roll back with it", rows)
	}
}

func withQuery(raw, q string) string {
	if strings.Contains(raw, "?") {
		return raw + "&" + q
	}
	return raw + "?" + q
}
