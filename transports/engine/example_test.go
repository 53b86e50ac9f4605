package engine_test

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/memory"
)

// Each slot of SubscribeSlots is run by one goroutine of the caller: Next
// hands a message to it, Settle applies its Ack or Nack. (Here one
// goroutine runs the only slot.)
func ExampleSubscriber_SubscribeSlots() {
	tr := memory.New(memory.NewBroker(0))
	defer tr.Close()
	sub, err := tr.NewSubscriber(transports.SubscriberConfig{Group: "svc-work", Consumer: "p1", AckTimeout: time.Minute, Concurrency: 1})
	if err != nil {
		panic(err)
	}
	defer sub.Close()
	ctx, stop := context.WithCancel(context.Background())
	slots, err := sub.(transports.SlotSubscriber).SubscribeSlots(ctx, "orders.placed")
	if err != nil {
		panic(err)
	}
	for _, id := range []string{"order-1", "order-2"} {
		if err := tr.Publish("orders.placed", message.NewMessage(id, []byte("{}"))); err != nil {
			panic(err)
		}
	}
	sl := slots[0]
	for range 2 {
		msg := sl.Next(nil)
		fmt.Println(msg.UUID, "attempt", transports.Info(msg).Attempt)
		msg.Ack()
		sl.Settle()
	}
	stop()
	fmt.Println(sl.Next(nil) == nil)
	// Output:
	// order-1 attempt 1
	// order-2 attempt 1
	// true
}
