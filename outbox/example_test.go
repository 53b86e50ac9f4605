package outbox_test

import (
	"context"
	"fmt"
	"log"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/outbox"
)

// OrderPlaced is the payload of the example's event.
type OrderPlaced struct {
	OrderID string `json:"order_id"`
}

// An order service writes an order and fires orders.placed in one
// transaction; the relay publishes the event if and only if it commits.
// (Not run by go test: it needs a database.)
func ExampleFire() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:5432/test")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	b, err := bus.New(bus.Config{Service: "orders"})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	ob, err := outbox.New(ctx, b, pool, outbox.Options{AutoMigrate: true})
	if err != nil {
		log.Fatal(err)
	}
	defer ob.Close() // before the bus: deferred calls run last first
	if err := ob.Start(); err != nil {
		log.Fatal(err)
	}

	placed := bus.NewEvent[OrderPlaced]("orders", "placed")
	tx, err := pool.Begin(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `INSERT INTO orders (id) VALUES ($1)`, "A-1001"); err != nil {
		log.Fatal(err)
	}
	id, err := outbox.Fire(ctx, tx, ob, placed, OrderPlaced{OrderID: "A-1001"})
	if err != nil {
		log.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("fired", id)
}
