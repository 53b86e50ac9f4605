package tracing_test

import (
	"context"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/busline/busline/tracing"
	"github.com/busline/busline/transports"
)

// BenchmarkStartFireNoSDK is the producer side of one Fire with no SDK.
func BenchmarkStartFireNoSDK(b *testing.B) {
	tel := tracing.New(tracing.Config{System: "memory", Process: "p1"})
	msg := &message.Message{UUID: "id", Metadata: message.Metadata{"a": "b"}, Payload: []byte("{}")}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, fs := tel.StartFire(ctx, "bench.happened", msg)
		fs.End(nil)
	}
}

// BenchmarkMiddlewareNoSDK is the consumer side of one delivery with no SDK.
func BenchmarkMiddlewareNoSDK(b *testing.B) {
	tel := tracing.New(tracing.Config{System: "memory", Process: "p1"})
	h := tel.Middleware("g", "bench.happened")(func(*message.Message) ([]*message.Message, error) { return nil, nil })
	msg := &message.Message{UUID: "id", Metadata: message.Metadata{"a": "b"}, Payload: []byte("{}")}
	msg.SetContext(transports.WithDeliveryInfo(context.Background(), &transports.DeliveryInfo{Attempt: 1}))
	b.ReportAllocs()
	for b.Loop() {
		_, _ = h(msg)
	}
}

func sdkTelemetry(b *testing.B) *tracing.Telemetry {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	return tracing.New(tracing.Config{System: "memory", Process: "p1", TracerProvider: tp, MeterProvider: mp,
		Propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})})
}

// BenchmarkStartFireSDK is the producer side of one Fire with the SDK.
func BenchmarkStartFireSDK(b *testing.B) {
	tel := sdkTelemetry(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		msg := &message.Message{UUID: "id", Metadata: message.Metadata{"a": "b"}, Payload: []byte("{}")}
		_, fs := tel.StartFire(ctx, "bench.happened", msg)
		fs.End(nil)
	}
}

// BenchmarkMiddlewareSDK is the consumer side of one delivery with the SDK.
func BenchmarkMiddlewareSDK(b *testing.B) {
	tel := sdkTelemetry(b)
	h := tel.Middleware("g", "bench.happened")(func(*message.Message) ([]*message.Message, error) { return nil, nil })
	msg := &message.Message{UUID: "id", Metadata: message.Metadata{"a": "b"}, Payload: []byte("{}")}
	_, fs := tel.StartFire(context.Background(), "bench.happened", msg)
	fs.End(nil)
	msg.SetContext(transports.WithDeliveryInfo(context.Background(), &transports.DeliveryInfo{Attempt: 1}))
	b.ReportAllocs()
	for b.Loop() {
		_, _ = h(msg)
	}
}
