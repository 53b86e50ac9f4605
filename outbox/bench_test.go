package outbox_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/internal/brokertest"
	"github.com/busline/busline/outbox"
	_ "github.com/busline/busline/transports/redisstream" // redis://
)

// BenchmarkRelay measures the relay draining a backlog of b.N committed
// events to the memory transport and to Redis (when reachable), with a
// listener that records them (concurrency 1), one event per publish call
// (run=1, the default) and in runs of up to 100 (Options.PublishRun).
//
//	go test -run '^$' -bench Relay -benchtime 5000x ./outbox/
func BenchmarkRelay(b *testing.B) {
	transports := map[string]func(b *testing.B) string{
		"memory": func(*testing.B) string { return "" }, // newWorld's own
		"redis": func(b *testing.B) string {
			brokertest.Reachable(b, brokertest.RedisAddr(), "redis-server --port 6379")
			prefix := "outbox-bench-" + rand.Text()[:8] + ":"
			b.Cleanup(func() { brokertest.DeleteRedisPrefix(b, brokertest.RedisAddr(), prefix) })
			return "redis://" + brokertest.RedisAddr() + "/0?prefix=" + prefix
		},
	}
	for _, tr := range []string{"memory", "redis"} {
		for _, run := range []int{1, 100} {
			b.Run(fmt.Sprintf("%s/run=%d", tr, run), func(b *testing.B) {
				url := transports[tr](b)
				w := newWorld(b, func(c *bus.Config) {
					if url != "" {
						c.Transport = url
					}
				})
				ob := w.outbox(outbox.Options{PublishRun: run})
				ctx := context.Background()
				tx, err := w.pool.Begin(ctx)
				if err != nil {
					b.Fatal(err)
				}
				for n := range b.N {
					if _, err := outbox.Fire(ctx, tx, ob, placed, order{n}); err != nil {
						b.Fatal(err)
					}
				}
				if err := tx.Commit(ctx); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				if err := ob.Start(); err != nil {
					b.Fatal(err)
				}
				w.waitDeliveries(b.N, 10*time.Minute)
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}
