// Command postgres-exactly-once shows exactly-once effects with the
// Postgres idempotency store: a billing service listens to orders.placed
// and, for each order, inserts an invoice and adds the amount to a revenue
// counter. The counter is not idempotent (running the handler twice would
// count the order twice), yet every order is counted once although
//
//   - every order is fired twice with the same event ID (a client retried),
//   - the handler's first attempt fails, after it has written, for every
//     order whose amount is a multiple of 3 cents (a downstream call timed
//     out).
//
// The handler writes through pgstore.Tx(ctx): the transaction that also
// holds the event's dedup row. It commits only when the handler returns
// nil, so the invoice, the counter and the "done" mark commit together or
// not at all.
//
//	go run ./examples/postgres-exactly-once [-keep]
//
// It runs on the in-memory transport and the PostgreSQL at
// BUSLINE_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test).
// It creates its tables and drops them at the end unless -keep is given.
// When the database is unreachable it says so and exits without error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/idempotency/pgstore"
	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/memory"
)

// OrderPlaced is the payload of orders.placed.
type OrderPlaced struct {
	OrderID     string `json:"order_id"`
	AmountCents int64  `json:"amount_cents"`
}

// OrdersPlaced is fired by the shop for every new order.
var OrdersPlaced = bus.NewEvent[OrderPlaced]("orders", "placed")

const (
	dedupTable   = "example_exactly_once_dedup"
	invoiceTable = "example_exactly_once_invoices"
	revenueTable = "example_exactly_once_revenue"
	brokerName   = "postgres-exactly-once"
)

func main() {
	keep := flag.Bool("keep", false, "keep the example's tables")
	flag.Parse()
	if err := run(*keep); err != nil {
		log.Fatal(err)
	}
}

func run(keep bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	dbURL := os.Getenv("BUSLINE_POSTGRES_URL")
	if dbURL == "" {
		dbURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	db, err := connect(ctx, dbURL)
	if err != nil {
		fmt.Printf("PostgreSQL unreachable at %s (%v).\nStart one on 127.0.0.1:5432 with a database `test`, or set BUSLINE_POSTGRES_URL. Skipping the example.\n", transports.RedactURL(dbURL), transports.RedactError(err, dbURL))
		return nil
	}
	defer db.Close()
	if err := createTables(ctx, db); err != nil {
		return err
	}
	if !keep {
		defer dropTables(db)
	}

	// The dedup table is created on first use (migrate=true); production
	// code would run pgstore.Migrate, or pgstore.Schema in its migrations.
	storeURL := withQuery(dbURL, "table="+dedupTable+"&migrate=true")
	b, err := bus.New(bus.Config{
		Service:     "billing",
		Transport:   "memory://" + brokerName,
		Idempotency: storeURL,
		Listener: bus.ListenerOptions{
			Retry: bus.RetryPolicy{InitialInterval: 10 * time.Millisecond},
		},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	defer b.Close()
	// Each in-process retry rolls back to a savepoint (the bus's chain
	// scopes every attempt with idempotency.Attempts), so the writes of a
	// failed attempt never commit with those of the successful one.

	var mu sync.Mutex
	attempts := map[string]int{}
	err = bus.Listen(b, OrdersPlaced, "invoice", func(ctx context.Context, d bus.Delivery[OrderPlaced]) error {
		tx := pgstore.Tx(ctx) // the transaction that holds the event's dedup row
		if tx == nil {
			return bus.Permanent(errors.New("no Postgres transaction: is the idempotency store postgres://?"))
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+invoiceTable+` (order_id, amount_cents) VALUES ($1, $2)`,
			d.Payload.OrderID, d.Payload.AmountCents); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE `+revenueTable+` SET total_cents = total_cents + $1, orders = orders + 1`,
			d.Payload.AmountCents); err != nil {
			return err
		}
		mu.Lock()
		attempts[d.Payload.OrderID]++
		n := attempts[d.Payload.OrderID]
		mu.Unlock()
		if n == 1 && d.Payload.AmountCents%3 == 0 {
			return errors.New("payment provider timed out") // after writing: rolled back
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := b.Start(ctx); err != nil {
		return err
	}

	orders := []OrderPlaced{{"A-1001", 1200}, {"A-1002", 4550}, {"A-1003", 999}, {"A-1004", 2050}, {"A-1005", 301}}
	var want int64
	for _, o := range orders {
		want += o.AmountCents
		for range 2 { // the shop retried its request: the same event twice
			if _, err := bus.Fire(ctx, b, OrdersPlaced, o, bus.WithEventID("order-placed-"+o.OrderID)); err != nil {
				return err
			}
		}
	}
	if err := waitIdle(ctx, memory.Named(brokerName, 0)); err != nil {
		return err
	}

	var invoices, counted int
	var total int64
	if err := db.QueryRow(ctx, `SELECT count(*) FROM `+invoiceTable).Scan(&invoices); err != nil {
		return err
	}
	if err := db.QueryRow(ctx, `SELECT total_cents, orders FROM `+revenueTable).Scan(&total, &counted); err != nil {
		return err
	}
	mu.Lock()
	calls := 0
	for _, n := range attempts {
		calls += n
	}
	mu.Unlock()
	fmt.Printf("fired %d events for %d orders; the handler ran %d times (%d first attempts failed after writing and were rolled back)\n",
		2*len(orders), len(orders), calls, calls-len(orders))
	fmt.Printf("invoices: %d, revenue: %d cents over %d orders (expected %d cents over %d)\n",
		invoices, total, counted, want, len(orders))
	if invoices != len(orders) || total != want || counted != len(orders) {
		return fmt.Errorf("effects were not exactly once")
	}
	fmt.Println("exactly once: every order invoiced and counted once")
	return nil
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
DROP TABLE IF EXISTS `+invoiceTable+`, `+revenueTable+`, `+dedupTable+`;
CREATE TABLE `+invoiceTable+` (order_id text PRIMARY KEY, amount_cents bigint NOT NULL);
CREATE TABLE `+revenueTable+` (total_cents bigint NOT NULL, orders int NOT NULL);
INSERT INTO `+revenueTable+` VALUES (0, 0);`)
	return err
}

func dropTables(db *pgxpool.Pool) {
	_, _ = db.Exec(context.Background(), `DROP TABLE IF EXISTS `+invoiceTable+`, `+revenueTable+`, `+dedupTable)
}

// waitIdle returns once every fired event has been acknowledged.
func waitIdle(ctx context.Context, broker *memory.Broker) error {
	for {
		changed := broker.Changed()
		if broker.Idle() {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("events still in flight: %w", ctx.Err())
		}
	}
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
