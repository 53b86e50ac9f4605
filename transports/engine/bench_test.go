package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/memory"
)

// BenchmarkMemoryHandOut measures the engine alone on the memory driver:
// b.N events published up front, consumed by Concurrency readers that ack
// at once.
//
//	go test -run '^$' -bench HandOut ./transports/engine/
func BenchmarkMemoryHandOut(b *testing.B) {
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
	for range b.N {
		if err := tr.Publish("t", message.NewMessage("id", []byte("x"))); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	done := make(chan struct{})
	left := make(chan struct{}, b.N)
	for range b.N {
		left <- struct{}{}
	}
	for range conc {
		go func() {
			for m := range msgs {
				m.Ack()
				select {
				case <-left:
					if len(left) == 0 {
						close(done)
					}
				default:
				}
			}
		}()
	}
	<-done
}
