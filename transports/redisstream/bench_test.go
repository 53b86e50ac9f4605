package redisstream

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/transports"
)

// benchPayload encodes to exactly 256 bytes of JSON.
type benchPayload struct {
	Data string `json:"data"`
}

var (
	benchEvent    = bus.NewEvent[benchPayload]("bench", "happened")
	benchData     = benchPayload{Data: strings.Repeat("x", 256-len(`{"data":""}`))}
	benchFirePool = 32 // goroutines firing
)

// End to end against watermill-redisstream (defaults and tuned) and a raw
// go-redis loop: `busline bench` (internal/bench), see docs/benchmarks.md.

// fireAll runs fire for i in [0, n) from benchFirePool goroutines.
func fireAll(b *testing.B, n int, fire func(i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for range benchFirePool {
		wg.Go(func() {
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
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
}

func newBenchBus(b *testing.B, url string) *bus.Bus {
	bb, err := bus.New(bus.Config{Service: "bench", Process: "p1", Transport: url})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bb.Close() })
	return bb
}

// BenchmarkLatency fires one event every millisecond (1k events/s) for
// b.N events through Busline with the default chain and reports the fire
// to handler latency, p50 and p99 (from ce-time, taken just before the
// XADD, to the handler's start):
//
//	go test -run '^$' -bench Latency -benchtime 5000x ./transports/redisstream/
func BenchmarkLatency(b *testing.B) {
	needRedis(b)
	bb := newBenchBus(b, testURL(b, ""))
	lat := make([]time.Duration, 0, b.N)
	var mu sync.Mutex
	done := make(chan struct{})
	if err := bus.Listen(bb, benchEvent, "sink", func(ctx context.Context, d bus.Delivery[benchPayload]) error {
		l := time.Since(d.FiredAt)
		mu.Lock()
		lat = append(lat, l)
		if len(lat) == b.N {
			close(done)
		}
		mu.Unlock()
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	if err := bb.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	tick := time.NewTicker(time.Millisecond)
	for range b.N {
		<-tick.C
		if _, err := bus.Fire(context.Background(), bb, benchEvent, benchData); err != nil {
			b.Fatal(err)
		}
	}
	tick.Stop()
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatal("not every event handled")
	}
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lat)
	p50, p99 := lat[len(lat)*50/100], lat[len(lat)*99/100]
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(0, "ns/op")
	fmt.Printf("redis fire -> handler latency at 1k events/s over %d events: p50 %s, p99 %s, max %s\n", len(lat), p50, p99, lat[len(lat)-1])
}

// BenchmarkIdleListeners starts 10 listeners (one bus, 10 events) with
// nothing to do and reports the CPU time the process uses while they
// idle, as a percentage of one core:
//
//	go test -run '^$' -bench IdleListeners -benchtime 1x ./transports/redisstream/
func BenchmarkIdleListeners(b *testing.B) {
	needRedis(b)
	window := 20 * time.Second
	if testing.Short() {
		window = 5 * time.Second
	}
	bb := newBenchBus(b, testURL(b, ""))
	for i := range 10 {
		ev := bus.NewEvent[benchPayload]("bench", fmt.Sprintf("idle_%d", i))
		if err := bus.Listen(bb, ev, fmt.Sprintf("sink-%d", i), func(context.Context, bus.Delivery[benchPayload]) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
	if err := bb.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	time.Sleep(time.Second) // let start-up work (own pending, first claims) finish
	b.ResetTimer()
	var pct float64
	for range b.N {
		before, t0 := cpuTime(), time.Now()
		time.Sleep(window)
		pct = 100 * float64(cpuTime()-before) / float64(time.Since(t0))
	}
	b.StopTimer()
	b.ReportMetric(pct, "%core")
	b.ReportMetric(0, "ns/op")
	fmt.Printf("redis: 10 idle listeners use %.3f%% of a core (over %s)\n", pct, window)
}

// cpuTime is the user+system CPU time of this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTransport measures the transport alone, without the bus: 32
// goroutines publish b.N messages of 256 bytes; one subscriber
// (Concurrency 16) hands them to 16 workers that ack at once. It reports
// events/s and the CPU time of the process per event.
//
//	go test -run '^$' -bench 'Transport$' -benchtime 40000x ./transports/redisstream/
func BenchmarkTransport(b *testing.B) {
	tr := openTransport(b, testURL(b, os.Getenv("BUSLINE_BENCH_QUERY")))
	sub := newSub(b, tr, "bench-sink", "p1", time.Minute, 16, transports.Since{})
	ch, _ := subscribe(b, sub, "bench.happened")
	var handled atomic.Int64
	done := make(chan struct{})
	n := int64(b.N)
	for range 16 {
		go func() {
			for m := range ch {
				m.Ack()
				if handled.Add(1) == n {
					close(done)
				}
			}
		}()
	}
	body := []byte(`{"data":"` + benchData.Data + `"}`)
	b.ResetTimer()
	cpu0, start := cpuTime(), time.Now()
	fireAll(b, b.N, func(int) error {
		m := message.NewMessage(watermill.NewUUID(), body)
		m.Metadata.Set("ce-type", "bench.happened")
		return tr.Publish("bench.happened", m)
	})
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("handled %d of %d", handled.Load(), n)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/event")
	b.ReportMetric(0, "ns/op")
}
