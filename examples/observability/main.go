// Command observability follows one event across the bus with
// OpenTelemetry: a "checkout" request fires orders.placed; the listener
// send-receipt fails on the first delivery and succeeds on the second.
// The spans are printed by the stdout exporter as they end, then as a
// tree, followed by the bus's metrics.
//
//	go run ./examples/observability
//
// It runs on the in-memory transport with no setup; set BUSLINE_TRANSPORT
// (for example redis://127.0.0.1:6379/0 or amqp://guest:guest@127.0.0.1:5672/)
// to watch the trace cross a real broker. It exits once the event is handled.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/tracing"
	_ "github.com/busline/busline/transports/all"
)

// OrderPlaced is the payload of orders.placed.
type OrderPlaced struct {
	Order string  `json:"order"`
	Total float64 `json:"total"`
}

// OrdersPlaced is fired when a customer checks out.
var OrdersPlaced = bus.NewEvent[OrderPlaced]("orders", "placed")

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// The SDK: spans to stdout (and to memory, for the tree below),
	// metrics into a reader we collect once at the end, W3C trace
	// context and baggage in event metadata. A real service would export
	// with OTLP instead (see docs/observability.md).
	stdout, err := stdouttrace.New(stdouttrace.WithPrettyPrint(), stdouttrace.WithoutTimestamps())
	if err != nil {
		return err
	}
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName("checkout"))),
		sdktrace.WithSyncer(stdout),
		sdktrace.WithSyncer(spans),
	)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	otel.SetTracerProvider(tp)
	otel.SetMeterProvider(mp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))

	cfg, err := bus.ConfigFromEnv()
	if err != nil {
		return err
	}
	cfg.Service = "checkout"
	cfg.Process = "web-1"
	// Logs with the trace of the handler's context (trace_id, span_id).
	logger := slog.New(tracing.NewLogHandler(slog.NewTextHandler(os.Stderr, nil)))
	cfg.Logger = logger
	b, err := bus.New(cfg)
	if err != nil {
		return err
	}
	defer b.Close()

	var calls atomic.Int32
	done := make(chan struct{})
	err = bus.Listen(b, OrdersPlaced, "send-receipt", func(ctx context.Context, d bus.Delivery[OrderPlaced]) error {
		if calls.Add(1) == 1 {
			logger.WarnContext(ctx, "mail server busy", "order", d.Payload.Order, "attempt", d.Attempt)
			return errors.New("mail server busy")
		}
		logger.InfoContext(ctx, "receipt sent", "order", d.Payload.Order, "attempt", d.Attempt)
		close(done)
		return nil
	}, bus.WithRetry(bus.RetryPolicy{Tries: 1, RedeliveryDelay: func(int) time.Duration { return 100 * time.Millisecond }}))
	if err != nil {
		return err
	}
	if err := b.Start(ctx); err != nil {
		return err
	}

	// The request that fires the event.
	reqCtx, req := tp.Tracer("checkout").Start(ctx, "POST /checkout")
	id, err := bus.Fire(reqCtx, b, OrdersPlaced, OrderPlaced{Order: "A-1001", Total: 42.5})
	req.End()
	if err != nil {
		return err
	}
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("event %s not handled: %w", id, ctx.Err())
	}
	// The consumer span of the second attempt ends when the chain
	// returns, just after the handler.
	for len(spans.GetSpans()) < 4 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("spans of event %s: %w", id, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	fmt.Printf("\nThe trace of event %s:\n\n", id)
	printTree(spans.GetSpans())
	fmt.Println("\nMetrics:")
	if err := printMetrics(reader); err != nil {
		return err
	}
	if err := b.Close(); err != nil {
		return err
	}
	return tp.Shutdown(context.Background())
}

// printTree prints the spans as a tree by parent, children by start time.
func printTree(spans tracetest.SpanStubs) {
	children := map[string][]tracetest.SpanStub{}
	ids := map[string]bool{}
	for _, s := range spans {
		ids[s.SpanContext.SpanID().String()] = true
	}
	for _, s := range spans {
		parent := s.Parent.SpanID().String()
		if !s.Parent.IsValid() || !ids[parent] {
			parent = ""
		}
		children[parent] = append(children[parent], s)
	}
	var walk func(parent, indent string)
	walk = func(parent, indent string) {
		kids := children[parent]
		sort.Slice(kids, func(i, j int) bool { return kids[i].StartTime.Before(kids[j].StartTime) })
		for _, s := range kids {
			var notes []string
			for _, kv := range s.Attributes {
				switch kv.Key {
				case "busline.attempt", "busline.outcome", "messaging.consumer.group.name":
					notes = append(notes, fmt.Sprintf("%s=%s", kv.Key, kv.Value.Emit()))
				}
			}
			if s.Status.Description != "" {
				notes = append(notes, "error="+s.Status.Description)
			}
			fmt.Printf("%s%-8s %-32s trace=%s span=%s %s\n", indent, strings.ToLower(s.SpanKind.String()), s.Name,
				s.SpanContext.TraceID().String()[:8], s.SpanContext.SpanID(), strings.Join(notes, " "))
			walk(s.SpanContext.SpanID().String(), indent+"  ")
		}
	}
	walk("", "")
}

// printMetrics prints the counters and histogram counts of the bus.
func printMetrics(reader *sdkmetric.ManualReader) error {
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		return err
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					fmt.Printf("  %-40s %-10s %d  %s\n", m.Name, m.Unit, dp.Value, attrs(dp.Attributes))
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					fmt.Printf("  %-40s %-10s count=%d sum=%.4f  %s\n", m.Name, m.Unit, dp.Count, dp.Sum, attrs(dp.Attributes))
				}
			case metricdata.Gauge[int64]:
				for _, dp := range d.DataPoints {
					fmt.Printf("  %-40s %-10s %d  %s\n", m.Name, m.Unit, dp.Value, attrs(dp.Attributes))
				}
			}
		}
	}
	return nil
}

func attrs(s attribute.Set) string {
	var parts []string
	for _, kv := range s.ToSlice() {
		if kv.Key == "messaging.system" || kv.Key == "messaging.destination.name" {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s=%s", kv.Key, kv.Value.Emit()))
	}
	return strings.Join(parts, " ")
}
