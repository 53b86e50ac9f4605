package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/busline/busline/outbox"
)

// BenchmarkRelay measures the relay draining a backlog of b.N committed
// events to the memory transport, with a listener that records them.
//
//	go test -run '^$' -bench Relay -benchtime 20000x ./outbox/
func BenchmarkRelay(b *testing.B) {
	w := newWorld(b)
	ob := w.outbox(outbox.Options{})
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
}
