package bus_test

import (
	"context"
	"fmt"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/idempotency"
	"github.com/busline/busline/transports/memory"
)

// A bus built from values made in code — a transport with a custom client
// or TLS configuration, a store — instead of URLs, as sql.OpenDB sits
// beside sql.Open. The bus owns them and closes them on Close.
func ExampleNewContext() {
	ctx := context.Background()
	t := memory.New(memory.NewBroker(0)) // or redisstream.New(ctx, client, opts, logger)
	store := idempotency.NewMemoryStore()
	b, err := bus.NewContext(ctx, bus.Config{Service: "price-monitor"}, bus.WithTransport(t), bus.WithStore(store))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	fmt.Println(b.Service(), b.Transport() == t)
	// Output: price-monitor true
}

// Two pairs can spell one group; Start refuses the second where the
// transport keeps records (bus.ErrGroupConflict).
func ExampleGroupName() {
	fmt.Println(bus.GroupName("billing-eu", "invoice"))
	fmt.Println(bus.GroupName("billing", "eu-invoice"))
	fmt.Println(bus.ValidateName("listener", "invoice.dead") != nil)
	// Output:
	// billing-eu-invoice
	// billing-eu-invoice
	// true
}
