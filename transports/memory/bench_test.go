package memory_test

import (
	"context"
	"io"
	"log/slog"
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
// default chain (recover, dead-letter, memory idempotency, retry, timeout)
// handled them all, then does the same with Watermill's GoChannel
// (persistent) and a router handler, in the same run. It reports both
// rates and busline/watermill.
//
//	go test -run '^$' -bench EndToEnd -benchtime 200000x ./transports/memory/
func BenchmarkEndToEnd(b *testing.B) {
	payload := benchPayload{Data: string(make([]byte, 200))}
	n := b.N
	bl := runBusline(b, n, payload)
	wm := runGoChannel(b, n, payload)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(n)/bl.Seconds(), "busline_events/s")
	b.ReportMetric(float64(n)/wm.Seconds(), "watermill_events/s")
	b.ReportMetric(wm.Seconds()/bl.Seconds(), "ratio")
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
	router.AddNoPublisherHandler("consume", benchEvent.Name(), pubSub, func(msg *message.Message) error {
		if handled.Add(1) == int64(n) {
			close(done)
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = router.Run(ctx) }()
	<-router.Running()
	data, _ := bus.JSONCodec{}.Marshal(payload)
	start := time.Now()
	for range n {
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
