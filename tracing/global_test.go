package tracing_test

import (
	"io"
	"log/slog"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/busline/busline/bus"
)

// TestGlobalProviders: zero Config fields use the OpenTelemetry globals,
// including a propagator and SDK installed after bus.New.
func TestGlobalProviders(t *testing.T) {
	o := newOtel(t)
	got := make(chan handled, 1)
	b := startBus(t, bus.Config{Service: service, Transport: "memory://", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
		func(b *bus.Bus) {
			if err := bus.Listen(b, happened, "audit", record(got)); err != nil {
				t.Fatal(err)
			}
		})
	otel.SetTracerProvider(o.tp)
	otel.SetMeterProvider(o.mp)
	otel.SetTextMapPropagator(o.prop)
	t.Cleanup(func() {
		otel.SetTracerProvider(tracenoop.NewTracerProvider())
		otel.SetMeterProvider(noop.NewMeterProvider())
		otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
	})
	id, request := fireTraced(t, o, b)
	h := receive(t, got)
	prod := o.waitSpans(t, 1, producerSpan(id))[0]
	cons := o.waitSpans(t, 1, consumerSpans(id))[0]
	if cons.SpanContext().TraceID() != request.TraceID() || cons.Parent().SpanID() != prod.SpanContext().SpanID() {
		t.Errorf("consumer span not a child of the producer span through the global propagator")
	}
	if h.member != "acme" {
		t.Errorf("baggage %q", h.member)
	}
	if n := o.counter(t, "messaging.client.sent.messages"); n != 1 {
		t.Errorf("sent through the global meter provider = %d, want 1", n)
	}
}
