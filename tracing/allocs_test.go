//go:build !race

package tracing_test

import (
	"context"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/busline/busline/tracing"
	"github.com/busline/busline/transports"
)

// TestNoSDKAllocations: without an SDK, the producer side of Fire and the
// consumer middleware allocate nothing (the globals, whether set to the
// no-op providers or never set, and the explicit no-op providers).
func TestNoSDKAllocations(t *testing.T) {
	for name, cfg := range map[string]tracing.Config{
		"globals": {System: "memory", Process: "p1"},
		"noop":    {System: "memory", Process: "p1", TracerProvider: tracenoop.NewTracerProvider(), MeterProvider: metricnoop.NewMeterProvider()},
	} {
		t.Run(name, func(t *testing.T) {
			tel := tracing.New(cfg)
			h := tel.Middleware("g", "bench.happened")(func(*message.Message) ([]*message.Message, error) { return nil, nil })
			msg := &message.Message{UUID: "id", Metadata: message.Metadata{"a": "b"}, Payload: []byte("{}")}
			msg.SetContext(transports.WithDeliveryInfo(context.Background(), &transports.DeliveryInfo{Attempt: 1}))
			ctx := context.Background()
			if n := testing.AllocsPerRun(100, func() {
				_, fs := tel.StartFire(ctx, "bench.happened", msg)
				fs.End(nil)
			}); n != 0 {
				t.Errorf("StartFire+End: %v allocations, want 0", n)
			}
			if n := testing.AllocsPerRun(100, func() { _, _ = h(msg) }); n != 0 {
				t.Errorf("Middleware: %v allocations, want 0", n)
			}
		})
	}
}
