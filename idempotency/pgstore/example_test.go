package pgstore_test

import (
	"context"
	"errors"
	"log"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/idempotency/pgstore" // registers the postgres:// dedup store
	_ "github.com/busline/busline/transports/all"
)

type OrderPlaced struct {
	OrderID     string `json:"order_id"`
	AmountCents int64  `json:"amount_cents"`
}

var OrdersPlaced = bus.NewEvent[OrderPlaced]("orders", "placed")

// Exactly-once effects: the handler writes through pgstore.Tx(ctx), the
// transaction that also inserts the event's dedup row. Both commit when the
// handler returns nil, or neither does. Run it with a PostgreSQL at
// 127.0.0.1:5432 (see examples/postgres-exactly-once for the whole program).
func ExampleTx() {
	b, err := bus.New(bus.Config{
		Service:     "billing",
		Idempotency: "postgres://postgres@127.0.0.1:5432/test",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	err = bus.Listen(b, OrdersPlaced, "invoice", func(ctx context.Context, d bus.Delivery[OrderPlaced]) error {
		tx := pgstore.Tx(ctx)
		if tx == nil {
			return bus.Permanent(errors.New("the idempotency store is not postgres://"))
		}
		_, err := tx.Exec(ctx, `INSERT INTO invoices (order_id, amount_cents) VALUES ($1, $2)`, d.Payload.OrderID, d.Payload.AmountCents)
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
}
