package tracing_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/tracing"
	_ "github.com/busline/busline/transports/memory"
)

type OrderPlaced struct {
	Order string `json:"order"`
}

// A bus with an OpenTelemetry SDK: Fire makes a PRODUCER span, each
// delivery attempt a CONSUMER span in the same trace (the trace context
// crosses the broker in the event's traceparent metadata).
func Example() {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	defer tp.Shutdown(context.Background())

	b, err := bus.New(bus.Config{
		Service:        "billing",
		TracerProvider: tp,
		Propagator:     propagation.TraceContext{},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	placed := bus.NewEvent[OrderPlaced]("orders", "placed")
	done := make(chan struct{})
	_ = bus.Listen(b, placed, "invoice", func(ctx context.Context, d bus.Delivery[OrderPlaced]) error {
		close(done)
		return nil
	})
	ctx := context.Background()
	if err := b.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := bus.Fire(ctx, b, placed, OrderPlaced{Order: "A-1"}); err != nil {
		fmt.Println(err)
		return
	}
	<-done
	_ = b.Close() // ends the consumer span

	got := spans.GetSpans()
	var names []string
	for _, s := range got {
		names = append(names, s.SpanKind.String()+" "+s.Name)
	}
	sort.Strings(names)
	fmt.Println(names, got[0].SpanContext.TraceID() == got[len(got)-1].SpanContext.TraceID())
	// Output: [consumer process orders.placed producer send orders.placed] true
}

// NewLogHandler adds trace_id and span_id to every log record written with
// a context that holds a span, such as a handler's ctx.
func ExampleNewLogHandler() {
	noTime := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	logger := slog.New(tracing.NewLogHandler(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{ReplaceAttr: noTime})))

	// In a handler, ctx holds the delivery's CONSUMER span; here, one by hand.
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	logger.InfoContext(ctx, "order stored", "order", "o-1")
	logger.InfoContext(context.Background(), "no span here")
	// Output:
	// {"level":"INFO","msg":"order stored","order":"o-1","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7"}
	// {"level":"INFO","msg":"no span here"}
}

func ExampleSystemForScheme() {
	fmt.Println(tracing.SystemForScheme("rediss"), tracing.SystemForScheme("amqp"), tracing.SystemForScheme("tls"))
	// Output: redis rabbitmq nats
}
