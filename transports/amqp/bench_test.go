package amqp

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v2/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/bus"
)

// benchPayload encodes to exactly 256 bytes of JSON.
type benchPayload struct {
	Data string `json:"data"`
}

var benchEvent = bus.NewEvent[benchPayload]("bench", "happened")

const benchPublishers = 32

// benchRates holds the events/s of every round of each side.
var benchRates = struct {
	sync.Mutex
	m map[string][]float64
}{m: map[string][]float64{}}

// BenchmarkEndToEnd fires b.N events of 256 bytes from 32 goroutines and
// measures until the listener handled the last one: Busline (bus package,
// default chain with the memory idempotency store, publisher confirms on)
// against watermill-amqp/v2 with NewDurableQueueConfig defaults, on the
// same broker in the same run. The two sides alternate for
// BUSLINE_BENCH_ROUNDS rounds (default 3), so that a burst of load on a
// shared machine does not land on one side only; the ratio is that of the
// medians. Run with a fixed count, e.g.
//
//	go test -run '^$' -bench EndToEnd -benchtime 20000x ./transports/amqp/
func BenchmarkEndToEnd(b *testing.B) {
	requireBroker(b)
	rounds, _ := strconv.Atoi(os.Getenv("BUSLINE_BENCH_ROUNDS"))
	if rounds <= 0 {
		rounds = 3
	}
	benchRates.Lock()
	benchRates.m = map[string][]float64{}
	benchRates.Unlock()
	for range rounds {
		b.Run("watermill-amqp", benchWatermill)
		b.Run("busline", benchBusline)
	}
	benchRates.Lock()
	defer benchRates.Unlock()
	w, bl := median(benchRates.m["watermill-amqp"]), median(benchRates.m["busline"])
	if w > 0 && bl > 0 {
		fmt.Printf("amqp end to end, 256-byte events, %d publishers, median of %d rounds: busline %.0f events/s, watermill-amqp %.0f events/s, ratio %.2fx\n",
			benchPublishers, rounds, bl, w, bl/w)
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// publishAll runs fire for i in [0, n) from benchPublishers goroutines.
func publishAll(b testing.TB, n int, fire func(i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for range benchPublishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fire(i); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
}

func report(b *testing.B, name string, n int, elapsed time.Duration) {
	rate := float64(n) / elapsed.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(0, "ns/op")
	if n < 100 {
		return // the framework's probing run
	}
	benchRates.Lock()
	benchRates.m[name] = append(benchRates.m[name], rate)
	benchRates.Unlock()
}

func benchBusline(b *testing.B) {
	raw := testURL(b, "", os.Getenv("BUSLINE_BENCH_QUERY"))
	bb := newTestBus(b, raw, "bench", "p1")
	var handled atomic.Int64
	done := make(chan struct{})
	n := int64(b.N)
	if err := bus.Listen(bb, benchEvent, "sink", func(ctx context.Context, d bus.Delivery[benchPayload]) error {
		if handled.Add(1) == n {
			close(done)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	startBus(b, bb)
	payload := benchPayload{Data: strings.Repeat("x", 256-len(`{"data":""}`))}
	b.ResetTimer()
	start := time.Now()
	publishAll(b, b.N, func(int) error {
		_, err := bus.Fire(context.Background(), bb, benchEvent, payload)
		return err
	})
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("handled %d of %d", handled.Load(), n)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	report(b, "busline", b.N, elapsed)
}

func benchWatermill(b *testing.B) {
	topic := "bt-bench-" + strings.ToLower(rand.Text()[:10])
	b.Cleanup(func() {
		ch := rawChannel(b)
		_, _ = ch.QueueDelete(topic, false, false, false)
	})
	cfg := wamqp.NewDurableQueueConfig(brokerURL())
	logger := watermill.NopLogger{}
	pub, err := wamqp.NewPublisher(cfg, logger)
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	sub, err := wamqp.NewSubscriber(cfg, logger)
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := sub.Subscribe(ctx, topic)
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < b.N; i++ {
			m, ok := <-msgs
			if !ok {
				return
			}
			m.Ack()
		}
	}()
	body := make([]byte, 256)
	for i := range body {
		body[i] = 'x'
	}
	b.ResetTimer()
	start := time.Now()
	publishAll(b, b.N, func(int) error {
		return pub.Publish(topic, message.NewMessage(watermill.NewUUID(), body))
	})
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatal("watermill-amqp subscriber did not get every message")
	}
	elapsed := time.Since(start)
	b.StopTimer()
	report(b, "watermill-amqp", b.N, elapsed)
}
