package memory_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/busline/busline/bus"
	_ "github.com/busline/busline/transports/memory"
)

type benchPayload struct {
	Data string `json:"data"`
}

var benchEvent = bus.NewEvent[benchPayload]("bench", "happened")

// BenchmarkEndToEnd fires b.N events and waits until a listener with the
// default chain (tracing without an SDK, recover, dead-letter, memory
// idempotency, retry, timeout)
// handled them all, then does the same with Watermill's GoChannel
// (persistent) and a router handler, in the same run. Both sides do the
// same payload work per event: JSON-encode it on the way in (Fire does it
// for Busline) and decode it in the handler (the typed listener does it for
// Busline). It reports both rates and busline/watermill, for a payload of
// 200 zero bytes (which JSON escapes to 1200 bytes, so decoding dominates)
// and of 200 ASCII letters (cheap JSON: the transport and chain dominate).
//
//	go test -run '^$' -bench EndToEnd -benchtime 200000x ./transports/memory/
func BenchmarkEndToEnd(b *testing.B) {
	for _, tc := range []struct {
		name string
		data string
	}{
		{"payload=zero200", string(make([]byte, 200))},
		{"payload=ascii200", strings.Repeat("x", 200)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			payload := benchPayload{Data: tc.data}
			n := b.N
			bl := runBusline(b, n, payload)
			wm := runGoChannel(b, n, payload)
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(n)/bl.Seconds(), "busline_events/s")
			b.ReportMetric(float64(n)/wm.Seconds(), "watermill_events/s")
			b.ReportMetric(wm.Seconds()/bl.Seconds(), "ratio")
		})
	}
}

func runBusline(b *testing.B, n int, payload benchPayload) time.Duration {
	bs, err := bus.New(bus.Config{Service: "bench", Transport: "memory://?maxlen=10000000", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer bs.Close()
	var handled atomic.Int64
	done := make(chan struct{})
	err = bus.Listen(bs, benchEvent, "consume", func(ctx context.Context, d bus.Delivery[benchPayload]) error {
		if handled.Add(1) == int64(n) {
			close(done)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := bs.Start(ctx); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for range n {
		if _, err := bus.Fire(ctx, bs, benchEvent, payload); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	return time.Since(start)
}

func runGoChannel(b *testing.B, n int, payload benchPayload) time.Duration {
	logger := watermill.NopLogger{}
	pubSub := gochannel.NewGoChannel(gochannel.Config{Persistent: true}, logger)
	router, err := message.NewRouter(message.RouterConfig{}, logger)
	if err != nil {
		b.Fatal(err)
	}
	var handled atomic.Int64
	done := make(chan struct{})
	codec := bus.JSONCodec{}
	router.AddNoPublisherHandler("consume", benchEvent.Name(), pubSub, func(msg *message.Message) error {
		var p benchPayload
		if err := codec.Unmarshal(msg.Payload, &p); err != nil {
			return err
		}
		if handled.Add(1) == int64(n) {
			close(done)
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = router.Run(ctx) }()
	<-router.Running()
	start := time.Now()
	for range n {
		data, err := codec.Marshal(payload)
		if err != nil {
			b.Fatal(err)
		}
		if err := pubSub.Publish(benchEvent.Name(), message.NewMessage(watermill.NewUUID(), data)); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	elapsed := time.Since(start)
	_ = router.Close()
	_ = pubSub.Close()
	return elapsed
}
