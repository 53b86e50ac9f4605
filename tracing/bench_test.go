package tracing_test

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/busline/busline/bus"
)

// BenchmarkEndToEnd fires b.N events on the memory transport and waits
// until a listener with the default chain handled them all, twice in the
// same run: with no OpenTelemetry SDK (the globals: no-op tracer, meter and
// propagator, what a program that does not use tracing gets) and with an
// SDK (every span sampled and batched to an exporter that drops them,
// metrics into a manual reader, W3C trace context and baggage propagated).
// It reports both rates, sdk_on/sdk_off, and heap allocations per event.
//
//	go test -run '^$' -bench EndToEnd -benchtime 200000x ./tracing/
func BenchmarkEndToEnd(b *testing.B) {
	n := b.N
	off, offAllocs := runBench(b, n, nil)
	on, onAllocs := runBench(b, n, withSDK(b))
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(n)/off.Seconds(), "sdk_off_events/s")
	b.ReportMetric(float64(n)/on.Seconds(), "sdk_on_events/s")
	b.ReportMetric(off.Seconds()/on.Seconds(), "on/off")
	b.ReportMetric(offAllocs, "sdk_off_allocs/event")
	b.ReportMetric(onAllocs, "sdk_on_allocs/event")
}

func withSDK(b *testing.B) func(*bus.Config) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	return func(c *bus.Config) {
		c.TracerProvider, c.MeterProvider = tp, mp
		c.Propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
}

// runBench returns the time to fire and handle n events and the heap
// allocations per event over that time (both sides of the bus).
func runBench(b *testing.B, n int, configure func(*bus.Config)) (time.Duration, float64) {
	cfg := bus.Config{Service: "bench", Transport: "memory://?maxlen=10000000", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if configure != nil {
		configure(&cfg)
	}
	bs, err := bus.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer bs.Close()
	var handled atomic.Int64
	done := make(chan struct{})
	if err := bus.Listen(bs, happened, "consume", func(ctx context.Context, d bus.Delivery[Payload]) error {
		if handled.Add(1) == int64(n) {
			close(done)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := bs.Start(ctx); err != nil {
		b.Fatal(err)
	}
	payload := Payload{N: len(strings.Repeat("x", 10))}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	for range n {
		if _, err := bus.Fire(ctx, bs, happened, payload); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	return elapsed, float64(after.Mallocs-before.Mallocs) / float64(n)
}
