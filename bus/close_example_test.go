package bus_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/busline/busline/bus"
)

// Run blocks until its context ends (in a service:
// signal.NotifyContext(ctx, syscall.SIGTERM)), then closes the bus. A
// shutdown on a broker that stopped answering returns after about
// ShutdownTimeout, a second and CloseBudget (allow a few seconds more; see
// Bus.Close), with ErrConnectionsDropped: nothing is lost, the events
// whose acknowledgements did not reach the broker are delivered again.
func ExampleBus_Run() {
	b, err := bus.New(bus.Config{Service: "shutdown-demo", Transport: "memory://"})
	if err != nil {
		log.Fatal(err)
	}
	err = bus.Listen(b, PricesChanged, "update-db", func(context.Context, bus.Delivery[PriceChanged]) error { return nil })
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	stop() // the signal came
	err = b.Run(ctx)
	switch {
	case errors.Is(err, bus.ErrConnectionsDropped):
		log.Printf("the broker did not answer the shutdown in time; unacknowledged events come back: %v", err)
	case err != nil:
		log.Printf("shutdown: %v", err)
	}
	fmt.Println("stopped, error:", err)
	// Output: stopped, error: <nil>
}
