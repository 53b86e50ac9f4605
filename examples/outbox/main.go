// Command outbox shows the transactional outbox: an order service commits
// an order and fires orders.placed in the same PostgreSQL transaction, and
// a billing service invoices each order exactly once.
//
// The order service writes the order and the event in one transaction
// (outbox.Fire): either both commit or neither does. One order fails
// validation after both writes and is rolled back; no event goes out for
// it. The outbox relay publishes the committed events to the transport with
// the IDs they were given at fire time. The billing service handles
// orders.placed with the Postgres idempotency store: the invoice and the
// event's "done" mark commit together, so an event published twice (by a
// relay that crashed between publishing and marking) is invoiced once; the
// example publishes one event a second time to show it.
//
//	go run ./examples/outbox [-keep]
//
// It needs the PostgreSQL at BUSLINE_POSTGRES_URL (default
// postgres://postgres@127.0.0.1:5432/test); when it is unreachable it says
// how to start one and exits with status 1. It runs on BUSLINE_TRANSPORT
// (default memory://outbox-example: both services in this process). It
// creates its tables and drops them at the end unless -keep is given. The
// tables have fixed names (example_outbox_orders, ...), and it drops them
// at its start too: on a database others use, give it a schema of its own
// with search_path in the URL, e.g.
// BUSLINE_POSTGRES_URL='postgres://postgres@127.0.0.1:5432/test?search_path=mine'
// after CREATE SCHEMA mine.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/idempotency/pgstore"
	"github.com/busline/busline/outbox"
	"github.com/busline/busline/transports"
	_ "github.com/busline/busline/transports/all"
)

// OrderPlaced is the payload of orders.placed.
type OrderPlaced struct {
	OrderID     string `json:"order_id"`
	AmountCents int64  `json:"amount_cents"`
}

// OrdersPlaced is fired by the order service for every committed order.
var OrdersPlaced = bus.NewEvent[OrderPlaced]("orders", "placed")

const (
	orderTable   = "example_outbox_orders"
	invoiceTable = "example_outbox_invoices"
	outboxTable  = "example_outbox_events"
	dedupTable   = "example_outbox_dedup"
)

func main() {
	keep := flag.Bool("keep", false, "keep the example's tables")
	flag.Parse()
	if err := run(*keep); err != nil {
		fmt.Fprintln(os.Stderr, "outbox example:", err)
		os.Exit(1)
	}
}

func run(keep bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dbURL := env("BUSLINE_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	transport := env("BUSLINE_TRANSPORT", "memory://outbox-example")
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	db, err := connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("PostgreSQL unreachable at %s: %w\n"+
			"This example needs PostgreSQL. Start one on 127.0.0.1:5432 with a database `test` (for example\n"+
			"`pg_ctlcluster --skip-systemctl-redirect 15 main start && su postgres -c 'createdb test'`),\n"+
			"or point BUSLINE_POSTGRES_URL at yours", redacted(dbURL), transports.RedactError(err, dbURL))
	}
	defer db.Close()
	if err := createTables(ctx, db); err != nil {
		return err
	}
	if !keep {
		defer dropTables(db)
	}

	// The billing service: exactly-once invoices with the Postgres store.
	billing, err := bus.New(bus.Config{
		Service: "billing", Transport: transport, Logger: logger,
		Idempotency: withQuery(dbURL, "table="+dedupTable+"&migrate=true"),
	})
	if err != nil {
		return err
	}
	defer billing.Close()
	err = bus.Listen(billing, OrdersPlaced, "invoice", func(ctx context.Context, d bus.Delivery[OrderPlaced]) error {
		tx := pgstore.Tx(ctx) // holds the event's done mark; commits when we return nil
		if tx == nil {
			return bus.Permanent(errors.New("no Postgres transaction: is the idempotency store postgres://?"))
		}
		_, err := tx.Exec(ctx, `INSERT INTO `+invoiceTable+` (order_id, event_id, amount_cents) VALUES ($1, $2, $3)`,
			d.Payload.OrderID, d.ID, d.Payload.AmountCents)
		return err
	}, bus.WithConcurrency(1)) // in order: the copy below is settled before the last order
	if err != nil {
		return err
	}
	if err := billing.Start(ctx); err != nil {
		return err
	}

	// The order service: fires through its outbox and runs the relay.
	orders, err := bus.New(bus.Config{Service: "orders", Transport: transport, Logger: logger})
	if err != nil {
		return err
	}
	defer orders.Close()
	ob, err := outbox.New(ctx, orders, db, outbox.Options{Table: outboxTable, AutoMigrate: true, Logger: logger})
	if err != nil {
		return err
	}
	defer ob.Close() // before the bus: the deferred calls run in reverse
	if err := ob.Start(); err != nil {
		return err
	}

	placed := []OrderPlaced{{"A-1001", 1200}, {"A-1002", 4550}, {"A-1003", -5}, {"A-1004", 2050}, {"A-1005", 301}}
	var committed int
	var firstID string
	place := func(o OrderPlaced) error {
		id, err := placeOrder(ctx, db, ob, o)
		switch {
		case errors.Is(err, errInvalid):
			fmt.Printf("order %s rolled back (%v): its event is never published\n", o.OrderID, err)
		case err != nil:
			return err
		default:
			committed++
			if firstID == "" {
				firstID = id
			}
			fmt.Printf("order %s committed with event %s\n", o.OrderID, id)
		}
		return nil
	}
	for _, o := range placed {
		if err := place(o); err != nil {
			return err
		}
	}
	// A relay that crashed after publishing and before marking publishes
	// again with the same ID; do it by hand to show that billing skips it.
	// The relay publishes in id order and billing handles one event at a
	// time, so once the next order is invoiced the copy has been skipped.
	if _, err := db.Exec(ctx, `UPDATE `+outboxTable+` SET published_at = NULL WHERE event_id = $1`, firstID); err != nil {
		return err
	}
	fmt.Printf("event %s marked unpublished: the relay publishes it again\n", firstID)
	if err := place(OrderPlaced{"A-1006", 777}); err != nil {
		return err
	}

	var invoices, republished int
	for {
		err := db.QueryRow(ctx, `SELECT (SELECT count(*) FROM `+invoiceTable+`),
	(SELECT count(*) FROM `+outboxTable+` WHERE published_at IS NULL)`).Scan(&invoices, &republished)
		if err != nil {
			return err
		}
		if invoices >= committed && republished == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d orders invoiced: %w", invoices, committed, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	var dup, stray int
	if err := db.QueryRow(ctx, `SELECT
	(SELECT count(*) FROM `+invoiceTable+`),
	(SELECT count(*) FROM (SELECT order_id FROM `+invoiceTable+` GROUP BY order_id HAVING count(*) > 1) d),
	(SELECT count(*) FROM `+invoiceTable+` i WHERE NOT EXISTS (SELECT 1 FROM `+orderTable+` o WHERE o.id = i.order_id))`).
		Scan(&invoices, &dup, &stray); err != nil {
		return err
	}
	fmt.Printf("committed orders: %d, invoices: %d, invoiced twice: %d, invoices of rolled-back orders: %d\n", committed, invoices, dup, stray)
	if invoices != committed || dup != 0 || stray != 0 {
		return errors.New("invoices differ from the committed orders")
	}
	fmt.Println("exactly once: every committed order invoiced once, the rolled-back one never")
	return nil
}

var errInvalid = errors.New("invalid amount")

// placeOrder writes the order and fires orders.placed in one transaction.
// An invalid order is rolled back after both writes, as a failure late in
// a real transaction would be.
func placeOrder(ctx context.Context, db *pgxpool.Pool, ob *outbox.Outbox, o OrderPlaced) (string, error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return "", err
	}
	defer func() { _ = tx.Rollback(ctx) }() // a no-op after Commit
	if _, err := tx.Exec(ctx, `INSERT INTO `+orderTable+` (id, amount_cents) VALUES ($1, $2)`, o.OrderID, o.AmountCents); err != nil {
		return "", err
	}
	id, err := outbox.Fire(ctx, tx, ob, OrdersPlaced, o)
	if err != nil {
		return "", err
	}
	if o.AmountCents <= 0 {
		return "", errInvalid
	}
	return id, tx.Commit(ctx)
}

func connect(ctx context.Context, dbURL string) (*pgxpool.Pool, error) {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	db, err := pgxpool.New(cctx, dbURL)
	if err != nil {
		return nil, err
	}
	if err := db.Ping(cctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func createTables(ctx context.Context, db *pgxpool.Pool) error {
	_, err := db.Exec(ctx, `
DROP TABLE IF EXISTS `+orderTable+`, `+invoiceTable+`, `+outboxTable+`, `+dedupTable+`;
CREATE TABLE `+orderTable+` (id text PRIMARY KEY, amount_cents bigint NOT NULL);
CREATE TABLE `+invoiceTable+` (order_id text NOT NULL, event_id text NOT NULL, amount_cents bigint NOT NULL);`)
	return err
}

func dropTables(db *pgxpool.Pool) {
	_, _ = db.Exec(context.Background(), `DROP TABLE IF EXISTS `+orderTable+`, `+invoiceTable+`, `+outboxTable+`, `+dedupTable)
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func withQuery(raw, q string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	if u.RawQuery != "" {
		u.RawQuery += "&"
	}
	u.RawQuery += q
	return u.String()
}

func redacted(raw string) string { return transports.RedactURL(raw) }
