// Command schemas shows events as contracts: two services agree on an
// event through its JSON Schema, one of them evolves the event, and the
// check that its CI runs before a deploy tells a compatible change from a
// breaking one.
//
//	go run ./examples/schemas
//
// The service inventory fires inventory.stock_changed; the service
// storefront listens to it. Both publish the schema of the event at Start
// (on the broker's records). Then the inventory team makes two new builds:
// v2 adds a field (compatible), v3 renames "quantity" and turns
// "warehouse" into a number (breaking). Each build's schemas are exported
// from code (Bus.ExportSchemas, what a test in its CI does) and checked
// against the broker (what `busline schema check FILE` does). Last, a
// storefront that validates payloads dead-letters a v3 event instead of
// handling a payload it cannot read.
//
// It runs on the in-memory transport with no setup, prints what the check
// found and exits 0.
package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/schema"
	"github.com/busline/busline/transports"
	_ "github.com/busline/busline/transports/memory"
)

// StockChanged is the payload of inventory.stock_changed as both services
// first agree on it.
type StockChanged struct {
	SKU       string `json:"sku"`
	Quantity  int    `json:"quantity"`
	Warehouse string `json:"warehouse"`
}

// StockChangedV2 adds an optional field: no listener requires it.
type StockChangedV2 struct {
	SKU       string `json:"sku"`
	Quantity  int    `json:"quantity"`
	Warehouse string `json:"warehouse"`
	Bin       string `json:"bin,omitempty"`
}

// StockChangedV3 renames quantity and makes the warehouse a number.
type StockChangedV3 struct {
	SKU       string `json:"sku"`
	Available int    `json:"available"`
	Warehouse int    `json:"warehouse"`
}

var (
	stockChanged   = bus.NewEvent[StockChanged]("inventory", "stock_changed")
	stockChangedV2 = bus.NewEvent[StockChangedV2]("inventory", "stock_changed")
	stockChangedV3 = bus.NewEvent[StockChangedV3]("inventory", "stock_changed")
)

const broker = "memory://schemas-example"

func main() {
	if err := run(os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	// storefront listens and validates what it gets.
	storefront, err := bus.New(bus.Config{Service: "storefront", Transport: broker, Logger: quiet, ValidatePayloads: true})
	if err != nil {
		return err
	}
	defer storefront.Close()
	handled := make(chan StockChanged, 1)
	if err := bus.Listen(storefront, stockChanged, "update-availability", func(_ context.Context, d bus.Delivery[StockChanged]) error {
		handled <- d.Payload
		return nil
	}); err != nil {
		return err
	}
	if err := storefront.Start(ctx); err != nil {
		return err
	}

	// inventory v1 fires the event; declaring it publishes its schema.
	inventory, err := bus.New(bus.Config{Service: "inventory", Transport: broker, Logger: quiet})
	if err != nil {
		return err
	}
	defer inventory.Close()
	if err := bus.Declare(inventory, stockChanged); err != nil {
		return err
	}
	if err := inventory.Start(ctx); err != nil {
		return err
	}

	published, err := schema.Published(ctx, inventory.Transport().(transports.RecordStore))
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "schemas on the broker:")
	for _, r := range published {
		fmt.Fprintf(out, "  %-24s %-8s %-11s %s\n", r.Event, r.Role, r.Service, schema.ShortHash(r.Hash))
	}

	// Each new build of inventory is checked before its deploy.
	for _, build := range []struct {
		name string
		bus  func() (*bus.Bus, error)
	}{
		{"v2 (adds an optional field bin)", func() (*bus.Bus, error) { return inventoryBuild(quiet, stockChangedV2) }},
		{"v3 (renames quantity, warehouse becomes a number)", func() (*bus.Bus, error) { return inventoryBuild(quiet, stockChangedV3) }},
	} {
		b, err := build.bus()
		if err != nil {
			return err
		}
		var file bytes.Buffer
		err = b.ExportSchemas(&file) // in CI: a test writes this file
		_ = b.Close()
		if err != nil {
			return err
		}
		f, err := schema.ReadFile(&file)
		if err != nil {
			return err
		}
		rep := schema.Check(f, published) // busline schema check FILE
		fmt.Fprintf(out, "\ncheck of inventory %s: ", build.name)
		if rep.OK() {
			fmt.Fprintf(out, "no breaking change (%d firer/listener pair compared) -> deploy\n", rep.Compared)
			continue
		}
		fmt.Fprintf(out, "%d breaking change(s) -> exit 1, no deploy\n", len(rep.Breaking))
		for _, b := range rep.Breaking {
			fmt.Fprintf(out, "  %s (listener %s): %s\n", b.Event, b.Listener, b.Message)
		}
	}

	// Had v3 shipped anyway, storefront would refuse its events: each is
	// dead-lettered with the mismatch as the reason, never half-read.
	v3, err := bus.New(bus.Config{Service: "inventory", Transport: broker, Logger: quiet})
	if err != nil {
		return err
	}
	defer v3.Close()
	if _, err := bus.Fire(ctx, v3, stockChangedV3, StockChangedV3{SKU: "lamp-1", Available: 3, Warehouse: 7}); err != nil {
		return err
	}
	if _, err := bus.Fire(ctx, inventory, stockChanged, StockChanged{SKU: "lamp-1", Quantity: 3, Warehouse: "north"}); err != nil {
		return err
	}
	select {
	case p := <-handled:
		fmt.Fprintf(out, "\nstorefront handled the v1 event: %s, %d in %s\n", p.SKU, p.Quantity, p.Warehouse)
	case <-ctx.Done():
		return ctx.Err()
	}
	dl, err := waitDeadLetter(ctx, storefront, "storefront-update-availability")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "storefront dead-lettered the v3 event: %s\n", dl.Reason)
	return nil
}

// inventoryBuild is how the inventory service sets up its bus; its CI
// builds it on memory:// without starting it and exports the schemas.
func inventoryBuild[T any](log *slog.Logger, ev bus.Event[T]) (*bus.Bus, error) {
	b, err := bus.New(bus.Config{Service: "inventory", Logger: log})
	if err != nil {
		return nil, err
	}
	if err := bus.Declare(b, ev); err != nil {
		_ = b.Close()
		return nil, err
	}
	return b, nil
}

// waitDeadLetter waits for the first dead letter of group.
func waitDeadLetter(ctx context.Context, b *bus.Bus, group string) (transports.DeadLetter, error) {
	dlq := b.Transport().(transports.DeadLetterStore)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		dls, err := dlq.DeadLetters(ctx, group, 1)
		if err != nil {
			return transports.DeadLetter{}, err
		}
		if len(dls) > 0 {
			return dls[0], nil
		}
		select {
		case <-ctx.Done():
			return transports.DeadLetter{}, fmt.Errorf("no dead letter in %s: %w", group, ctx.Err())
		case <-tick.C:
		}
	}
}
