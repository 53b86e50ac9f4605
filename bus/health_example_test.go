package bus_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/busline/busline/bus"
)

// Probes for an orchestrator: /healthz answers Live, /readyz answers Ready.
func ExampleBus_HealthHandler() {
	b, err := bus.New(bus.Config{Service: "price-monitor"})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	_ = bus.Listen(b, priceChanged, "send-price-alerts", func(context.Context, bus.Delivery[price]) error { return nil })

	mux := http.NewServeMux()
	mux.Handle("/healthz", b.HealthHandler())
	mux.Handle("/readyz", b.HealthHandler())

	probe := func(path string) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		fmt.Printf("%s %d %s", path, rec.Code, rec.Body)
	}
	probe("/readyz") // listeners registered, not started yet
	if err := b.Start(context.Background()); err != nil {
		panic(err)
	}
	probe("/healthz")
	probe("/readyz")
	// Output:
	// /readyz 503 bus: not ready: not started
	// /healthz 200 ok
	// /readyz 200 ok
}
