//go:build unix

package memory_test

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/memory"
)

// BenchmarkConsume measures the subscriber (the delivery engine over the
// memory driver) alone, without the bus: 16 readers ack every message at
// once, from a backlog published up front or while 16 goroutines publish.
// Besides the time it reports the process CPU time per message
// (cpu-µs/op), steadier than the time on a shared machine. It compiles
// against the subscribers before the delivery engine (88e9b0a) as well,
// for before/after comparisons (docs/benchmarks.md).
//
//	go test -run '^$' -bench Consume -benchtime 200000x -benchmem ./transports/memory/
func BenchmarkConsume(b *testing.B) {
	b.Run("backlog", func(b *testing.B) { consume(b, false) })
	b.Run("publishing", func(b *testing.B) { consume(b, true) })
}

func consume(b *testing.B, publishing bool) {
	tr := memory.New(memory.NewBroker(b.N + 1))
	defer tr.Close()
	const conc = 16
	sub, err := tr.NewSubscriber(transports.SubscriberConfig{Group: "g", Consumer: "c", AckTimeout: time.Minute, Concurrency: conc})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	msgs, err := sub.Subscribe(context.Background(), "t")
	if err != nil {
		b.Fatal(err)
	}
	publish := func(n int) {
		for range n {
			if err := tr.Publish("t", message.NewMessage("id", []byte("x"))); err != nil {
				b.Error(err)
				return
			}
		}
	}
	if !publishing {
		publish(b.N)
	}
	b.ResetTimer()
	cpu0 := processCPU()
	var wg sync.WaitGroup
	if publishing {
		for i := range conc {
			wg.Go(func() { publish(b.N/conc + min(1, max(0, b.N%conc-i))) })
		}
	}
	var left atomic.Int64
	left.Store(int64(b.N))
	done := make(chan struct{})
	for range conc {
		go func() {
			for m := range msgs {
				m.Ack()
				if left.Add(-1) == 0 {
					close(done)
				}
			}
		}()
	}
	<-done
	wg.Wait()
	b.ReportMetric(float64(processCPU()-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
}

// processCPU is the user and system CPU time of the process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
