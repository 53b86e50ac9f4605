package pgstore_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/idempotency"
	"github.com/busline/busline/idempotency/pgstore"
	"github.com/busline/busline/transports/memory"
)

type order struct{ N int }

var orderPlaced = bus.NewEvent[order]("shop", "order_placed")

// TestBusExactlyOnceEffects runs two processes of a service on one memory
// broker with the Postgres store. Every event is fired twice with the same
// ID, and the handler's first try of every third event fails after
// writing. Each event must leave exactly one effect row.
func TestBusExactlyOnceEffects(t *testing.T) {
	f := newFixture(t)
	name := "pgstore-" + rand.Text()[:8]
	t.Cleanup(func() { memory.Forget(name) })
	broker := memory.Named(name, 0)
	storeURL := withQuery(pgURL(), "table="+f.dedup)

	var mu sync.Mutex
	tries := map[string]int{}
	handler := func(ctx context.Context, d bus.Delivery[order]) error {
		tx := pgstore.Tx(ctx)
		if _, err := tx.Exec(ctx, "INSERT INTO "+f.effects+" (event_id, note) VALUES ($1, 'invoice')", d.ID); err != nil {
			return err
		}
		mu.Lock()
		tries[d.ID]++
		first := tries[d.ID] == 1
		mu.Unlock()
		if first && d.Payload.N%3 == 0 {
			return errors.New("first try fails after writing")
		}
		return nil
	}
	for i := range 2 {
		b, err := bus.New(bus.Config{
			Service: "shop", Process: fmt.Sprintf("p%d", i), Transport: "memory://" + name, Idempotency: storeURL,
			Listener: bus.ListenerOptions{
				AckTimeout: 2 * time.Second,
				Retry:      bus.RetryPolicy{Tries: 2, InitialInterval: time.Millisecond, RedeliveryDelay: func(int) time.Duration { return 10 * time.Millisecond }},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		b.Use(idempotency.Attempts())
		if err := bus.Listen(b, orderPlaced, "invoice", handler); err != nil {
			t.Fatal(err)
		}
		if err := b.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		const events = 30
		if i == 1 {
			for n := range events {
				for range 2 {
					if _, err := bus.Fire(context.Background(), b, orderPlaced, order{n}, bus.WithEventID(fmt.Sprintf("order-%d", n))); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	deadline := time.After(30 * time.Second)
	for {
		ch := broker.Changed()
		if broker.Idle() {
			break
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatal("events still unacknowledged after 30s")
		}
	}
	for n := range 30 {
		id := fmt.Sprintf("order-%d", n)
		if got := f.effectRows(t, id); got != 1 {
			t.Errorf("event %s: %d effect rows, want exactly 1", id, got)
		}
	}
}
