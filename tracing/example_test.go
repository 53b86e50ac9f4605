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
	logger := slog.New(tracing.NewLogHandler(slog.NewJSONHandler(os.Stdout, nil)))
	logger.InfoContext(context.Background(), "no span here")
}

func ExampleSystemForScheme() {
	fmt.Println(tracing.SystemForScheme("rediss"), tracing.SystemForScheme("amqp"), tracing.SystemForScheme("tls"))
	// Output: redis rabbitmq nats
}
