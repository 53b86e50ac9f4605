package redisstore_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wrs "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/bus"
	_ "github.com/busline/busline/transports/redisstream"
)

type benchPayload struct {
	Data string `json:"data"`
}

var (
	benchEvent = bus.NewEvent[benchPayload]("bench", "deduped")
	benchData  = benchPayload{Data: strings.Repeat("x", 256-len(`{"data":""}`))} // 256 bytes of JSON
	benchRates sync.Map
)

// BenchmarkEndToEnd fires b.N events of 256 bytes from 32 goroutines and
// measures until the listener handled the last one, on the same Redis in
// the same run:
//
//   - watermill-redisstream with its default publisher and subscriber
//     configs (one consumer group, no dedup);
//   - Busline on the Redis Streams transport with the Redis idempotency
//     store (default chain and listener options, so dedup by event ID
//     shared across processes).
//
// It prints both rates and the ratio (bar: at least 2x):
//
//	go test -run '^$' -bench EndToEnd -benchtime 20000x ./idempotency/redisstore/
func BenchmarkEndToEnd(b *testing.B) {
	client(b)
	b.Run("watermill-redisstream", benchWatermill)
	b.Run("busline+redis-store", func(b *testing.B) { benchBusline(b, "busline+redis-store", true) })
	if testing.Verbose() {
		b.Run("busline+memory-store", func(b *testing.B) { benchBusline(b, "busline+memory-store", false) })
	}
	w, ok1 := benchRates.Load("watermill-redisstream")
	bl, ok2 := benchRates.Load("busline+redis-store")
	if ok1 && ok2 {
		fmt.Printf("redis end to end, 256-byte events: busline + redis idempotency store %.0f events/s, watermill-redisstream defaults %.0f events/s, ratio %.2fx\n",
			bl.(float64), w.(float64), bl.(float64)/w.(float64))
	}
}

func fireAll(b *testing.B, fire func() error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := fire(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func report(b *testing.B, name string, elapsed time.Duration) {
	rate := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(0, "ns/op")
	benchRates.Store(name, rate)
}

// benchBusline measures Busline on the Redis transport, with the Redis
// store or (for reference, with -v) the per-process memory store.
func benchBusline(b *testing.B, name string, redisStore bool) {
	c := client(b)
	transport := redisURL() + "?prefix=" + prefix(b, c)
	store := "memory://"
	if redisStore {
		store = redisURL() + "?prefix=" + prefix(b, c)
	}
	bb, err := bus.New(bus.Config{Service: "bench", Process: "p1", Transport: transport, Idempotency: store})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bb.Close() })
	var handled atomic.Int64
	done := make(chan struct{})
	n := int64(b.N)
	if err := bus.Listen(bb, benchEvent, "sink", func(context.Context, bus.Delivery[benchPayload]) error {
		if handled.Add(1) == n {
			close(done)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	if err := bb.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	fireAll(b, func() error {
		_, err := bus.Fire(context.Background(), bb, benchEvent, benchData)
		return err
	})
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("handled %d of %d", handled.Load(), n)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	report(b, name, elapsed)
}

func benchWatermill(b *testing.B) {
	c := client(b)
	stream := prefix(b, c) + "bench"
	wc := redis.NewClient(c.Options())
	logger := watermill.NopLogger{}
	pub, err := wrs.NewPublisher(wrs.PublisherConfig{Client: wc}, logger)
	if err != nil {
		b.Fatal(err)
	}
	sub, err := wrs.NewSubscriber(wrs.SubscriberConfig{Client: wc, ConsumerGroup: "bench-sink"}, logger)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := sub.Subscribe(ctx, stream)
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range b.N {
			m, ok := <-msgs
			if !ok {
				return
			}
			m.Ack()
		}
	}()
	body := []byte(`{"data":"` + benchData.Data + `"}`)
	b.ResetTimer()
	start := time.Now()
	fireAll(b, func() error { return pub.Publish(stream, message.NewMessage(watermill.NewUUID(), body)) })
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatal("the watermill-redisstream subscriber did not get every message")
	}
	elapsed := time.Since(start)
	b.StopTimer()
	report(b, "watermill-redisstream", elapsed)
	cancel()
	_ = sub.Close() // closes wc too
}
