package tracing_test

import (
	"context"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

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
