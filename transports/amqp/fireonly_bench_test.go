package amqp

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/busline/busline/transports"
)

// BenchmarkFireOnly publishes b.N persistent 256-byte events from 16
// goroutines, each waiting for its confirm as bus.Fire does, into a group
// queue nobody consumes: the rate a confirm-waiting publisher reaches with
// 16 messages in flight and no consumer loading the broker, for pools of
// 1, 4 and 16 confirm channels (docs/benchmarks.md). Run it with a fixed
// count: go test -run '^$' -bench FireOnly -benchtime 10000x ./transports/amqp/
func BenchmarkFireOnly(b *testing.B) {
	const firers = 16
	payload := []byte(`{"data":"` + strings.Repeat("x", 256-11) + `"}`)
	for _, pool := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("pool=%d", pool), func(b *testing.B) {
			u, err := url.Parse(testURL(b, "", fmt.Sprintf("channel_pool_size=%d", pool)))
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			tr, err := Open(ctx, u, transports.OpenOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer tr.Close()
			// Declares the group queue bound to the event, then leaves it.
			sub, err := tr.Driver().Open(ctx, "fire.only", transports.SubscriberConfig{Group: "g", Consumer: "c", AckTimeout: time.Minute, Concurrency: 1})
			if err != nil {
				b.Fatal(err)
			}
			_ = sub.Close()
			var next atomic.Int64
			calls := make([][]time.Duration, firers)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for g := range firers {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						t0 := time.Now()
						if err := tr.Publish("fire.only", message.NewMessage(uuid.NewString(), payload)); err != nil {
							b.Error(err)
							return
						}
						calls[g] = append(calls[g], time.Since(t0))
					}
				})
			}
			wg.Wait()
			took := time.Since(start)
			b.StopTimer()
			all := slices.Concat(calls...)
			if len(all) == 0 {
				return
			}
			slices.Sort(all)
			var sum time.Duration
			for _, d := range all {
				sum += d
			}
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(float64(len(all))/took.Seconds(), "events/s")
			b.ReportMetric(ms(sum/time.Duration(len(all))), "call-mean-ms")
			b.ReportMetric(ms(all[len(all)/2]), "call-p50-ms")
			b.ReportMetric(ms(all[len(all)*99/100]), "call-p99-ms")
		})
	}
}
