// Package bustest runs a bus on a private in-memory broker for tests: the
// same consumer-group semantics as Redis Streams, no setup, no sleeps.
//
//	b := bustest.New(t, bus.Config{Service: "price-monitor"})
//	if err := bus.Listen(b.Bus, prices, "update-db", handler); err != nil {
//		t.Fatal(err)
//	}
//	b.Start(t)
//	if _, err := bus.Fire(ctx, b.Bus, prices, PriceChanged{...}); err != nil {
//		t.Fatal(err)
//	}
//	b.MustWaitIdle(t) // every fired event acked or dead-lettered
//	bustest.AssertFired(t, b, prices, 1)
//	b.AssertSucceeded(t, b.Group("update-db"), 1)
//
// ExampleAssertFired (in example_test.go) runs these steps, compiled and run.
// New registers cleanup with t, so the bus is closed when the test ends.
package bustest
