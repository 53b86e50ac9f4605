// Command quickstart is the price monitor of the Lightbus quickstart on
// Busline: a scraper fires competitor_prices.changed; the service
// price-monitor listens with two listeners, send-price-alerts and
// update-db, and each gets its own copy of every event.
//
//	go run ./examples/quickstart
//
// It runs on the in-memory transport with no setup; set BUSLINE_TRANSPORT
// (for example redis://127.0.0.1:6379/0) to run it on a broker. It exits
// once every event has been handled by both listeners.
package main

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/transports"
	_ "github.com/busline/busline/transports/all" // every transport and store URL scheme
)

// PriceChanged is the payload of competitor_prices.changed.
type PriceChanged struct {
	Product    string  `json:"product"`
	Competitor string  `json:"competitor"`
	Price      float64 `json:"price"`
}

// PricesChanged is fired whenever a competitor changes a price.
var PricesChanged = bus.NewEvent[PriceChanged]("competitor_prices", "changed")

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	cfg, err := bus.ConfigFromEnv()
	if err != nil {
		return err
	}
	if cfg.Service == "" {
		cfg.Service = "price-monitor"
	}
	if cfg.Process == "" {
		// A stable process name: after a restart this process takes back
		// the events it held unacknowledged at once, instead of leaving
		// them for AckTimeout (60 s) to another process. The default is a
		// random name; one process per host can use "{hostname}".
		cfg.Process = "{hostname}"
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	b, err := bus.New(cfg)
	if err != nil {
		return err
	}
	defer b.Close()

	prices := []PriceChanged{
		{"espresso-machine", "coffee-corp", 249.00},
		{"espresso-machine", "bean-barn", 239.50},
		{"grinder", "coffee-corp", 89.99},
	}

	var mu sync.Mutex
	var handled sync.WaitGroup
	handled.Add(2 * len(prices))
	seen := map[string]bool{} // listener/event: counts each copy once even if redelivered
	record := func(listener, id string) bool {
		mu.Lock()
		defer mu.Unlock()
		if seen[listener+"/"+id] {
			return false
		}
		seen[listener+"/"+id] = true
		return true
	}

	// Consumer group "price-monitor-send-price-alerts".
	err = bus.Listen(b, PricesChanged, "send-price-alerts", func(ctx context.Context, d bus.Delivery[PriceChanged]) error {
		if record("send-price-alerts", d.ID) {
			fmt.Printf("[send-price-alerts] %s: %s now sells %s for %.2f\n", d.Group, d.Payload.Competitor, d.Payload.Product, d.Payload.Price)
			handled.Done()
		}
		return nil
	}, bus.WithConcurrency(1))
	if err != nil {
		return err
	}
	// Consumer group "price-monitor-update-db".
	err = bus.Listen(b, PricesChanged, "update-db", func(ctx context.Context, d bus.Delivery[PriceChanged]) error {
		if record("update-db", d.ID) {
			fmt.Printf("[update-db]         %s: stored %s/%s = %.2f (event %s)\n", d.Group, d.Payload.Competitor, d.Payload.Product, d.Payload.Price, d.ID)
			handled.Done()
		}
		return nil
	}, bus.WithConcurrency(1))
	if err != nil {
		return err
	}
	if err := b.Start(ctx); err != nil {
		return err
	}
	fmt.Printf("service %s, process %s, transport %s\n", b.Service(), b.Process(), transportName(cfg.Transport))

	// The scraper fires one event per price it sees.
	for _, p := range prices {
		id, err := bus.Fire(ctx, b, PricesChanged, p)
		if err != nil {
			return err
		}
		fmt.Printf("fired %s %s\n", PricesChanged.Name(), id)
	}

	done := make(chan struct{})
	go func() { handled.Wait(); close(done) }()
	select {
	case <-done:
		fmt.Printf("every listener got its own copy of all %d events\n", len(prices))
		return nil
	case <-ctx.Done():
		return fmt.Errorf("events not handled in time: %w", ctx.Err())
	}
}

// transportName is the transport URL as it may be printed: passwords and
// secret query parameters masked.
func transportName(url string) string {
	if url == "" {
		return "memory://"
	}
	return transports.RedactURL(url)
}
