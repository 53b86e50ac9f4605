// Package bustest runs a bus on a private in-memory broker for tests: the
// same consumer-group semantics as Redis Streams, no setup, no sleeps.
//
//	b := bustest.New(t, bus.Config{Service: "price-monitor"})
//	bus.Listen(b.Bus, prices, "update-db", handler)
//	b.Start(t)
//	bus.Fire(ctx, b.Bus, prices, PriceChanged{...})
//	b.WaitIdle(t)            // every fired event acked or dead-lettered
//	b.AssertHandled(t, "price-monitor-update-db", 1)
//
// New registers cleanup with t, so the bus is closed when the test ends.
package bustest
