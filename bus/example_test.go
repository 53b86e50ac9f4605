package bus_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/busline/busline/bus"
	_ "github.com/busline/busline/transports/memory"
)

type PriceChanged struct {
	Product string  `json:"product"`
	Price   float64 `json:"price"`
}

var PricesChanged = bus.NewEvent[PriceChanged]("competitor_prices", "changed")

// A service fires an event and two listeners of another service each get
// their own copy.
func Example() {
	ctx := context.Background()
	b, err := bus.New(bus.Config{Service: "price-monitor", Transport: "memory://"})
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan string, 2)
	for _, listener := range []string{"send-price-alerts", "update-db"} {
		err := bus.Listen(b, PricesChanged, listener, func(ctx context.Context, d bus.Delivery[PriceChanged]) error {
			done <- fmt.Sprintf("%s got %s %.2f", d.Group, d.Payload.Product, d.Payload.Price)
			return nil
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	if err := b.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	if _, err := bus.Fire(ctx, b, PricesChanged, PriceChanged{"grinder", 89.99}); err != nil {
		log.Fatal(err)
	}
	got := map[string]bool{<-done: true, <-done: true}
	fmt.Println(got["price-monitor-send-price-alerts got grinder 89.99"], got["price-monitor-update-db got grinder 89.99"])
	// Output: true true
}

func ExampleNewEvent() {
	e := bus.NewEvent[PriceChanged]("competitor_prices", "changed")
	fmt.Println(e.Name())
	// Output: competitor_prices.changed
}

func ExamplePermanent() {
	handler := func(ctx context.Context, d bus.Delivery[PriceChanged]) error {
		if d.Payload.Price < 0 {
			// Retrying will not fix a negative price: dead-letter it now.
			return bus.Permanent(fmt.Errorf("negative price %v", d.Payload.Price))
		}
		return nil
	}
	err := handler(context.Background(), bus.Delivery[PriceChanged]{Payload: PriceChanged{Price: -1}})
	fmt.Println(err)
	// Output: permanent: negative price -1
}

func ExampleConfigFromEnv() {
	// What the shell does for: BUSLINE_SERVICE=price-monitor ./service
	if old, ok := os.LookupEnv("BUSLINE_SERVICE"); ok {
		defer os.Setenv("BUSLINE_SERVICE", old)
	} else {
		defer os.Unsetenv("BUSLINE_SERVICE")
	}
	os.Setenv("BUSLINE_SERVICE", "price-monitor")

	cfg, err := bus.ConfigFromEnv()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Service)
	// Output: price-monitor
}

// An event's payload type is its contract: Schema derives the JSON Schema
// from the Go type, and ExportSchemas writes the schemas of every event a
// bus fires (Declare) and listens to (Listen) for `busline schema check`.
func ExampleEvent_Schema() {
	type stockChanged struct {
		SKU      string  `json:"sku"`
		Quantity int     `json:"quantity"`
		Note     *string `json:"note,omitempty"`
	}
	changed := bus.NewEvent[stockChanged]("warehouse", "stock_changed")
	fmt.Println(string(changed.Schema().JSON))
	// Output:
	// {"$schema":"https://json-schema.org/draft/2020-12/schema","properties":{"sku":{"type":"string"},"quantity":{"type":"integer"},"note":{"anyOf":[{"type":"string"},{"type":"null"}]}},"type":"object","required":["sku","quantity"]}
}

// A bus knows the events it listens to from Listen; Declare tells it the
// events it fires. Start publishes their schemas where the transport keeps
// records; Schemas and ExportSchemas return them in code.
func ExampleDeclare() {
	b, err := bus.New(bus.Config{Service: "pricing"})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	if err := bus.Declare(b, PricesChanged); err != nil {
		log.Fatal(err)
	}
	restocked := bus.NewEvent[PriceChanged]("warehouse", "restocked")
	if err := bus.Listen(b, restocked, "reprice", func(context.Context, bus.Delivery[PriceChanged]) error { return nil }); err != nil {
		log.Fatal(err)
	}
	for _, r := range b.Schemas() {
		fmt.Println(r.Event, r.Role, r.Listeners)
	}
	// Output:
	// competitor_prices.changed fires []
	// warehouse.restocked listens [reprice]
}
