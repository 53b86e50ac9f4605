package nats

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
)

// A handler that runs longer than AckWait keeps its message: the engine
// keeps it alive with the driver's in-progress acks within the consumer's
// AckWait (here ack_wait_max, far below the listener's AckTimeout, a
// third of which would be too late), and the server delivers it once.
func TestSlowHandlerNotRedelivered(t *testing.T) {
	// An in-progress ack every AckWait/3: a second AckWait leaves a
	// stall of up to 600 ms on a busy machine before the server redelivers.
	const ackWait = time.Second
	tr := openTransport(t, testURL(t, "", "ack_wait_max=1s"))
	const group = "svc-slow"
	sub, err := tr.NewSubscriber(transports.SubscriberConfig{Group: group, Consumer: "p1", AckTimeout: time.Minute, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := sub.Subscribe(ctx, testEvent)
	if err != nil {
		t.Fatal(err)
	}
	msg := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
	if err := tr.Publish(testEvent, msg); err != nil {
		t.Fatal(err)
	}
	var m *message.Message
	select {
	case m = <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no message")
	}
	if m.UUID != msg.UUID || transports.Info(m).Attempt != 1 {
		t.Fatalf("got %s attempt %d, want %s attempt 1", m.UUID, transports.Info(m).Attempt, msg.UUID)
	}
	// The handler works for five AckWaits while the other slot pulls: a
	// delivery of the message again would come to it.
	select {
	case again := <-ch:
		t.Fatalf("%s delivered again (attempt %d) while its handler ran", again.UUID, transports.Info(again).Attempt)
	case <-time.After(5 * ackWait):
	}
	m.Ack()
	c, err := tr.JetStream().Consumer(context.Background(), tr.Options().StreamName(testEvent), ConsumerName(group))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		info, err := c.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.Config.AckWait != ackWait {
			t.Fatalf("consumer AckWait %s, want %s", info.Config.AckWait, ackWait)
		}
		if info.NumAckPending == 0 {
			// Each delivery, a redelivery too, takes a consumer sequence.
			if info.Delivered.Consumer != 1 || info.NumRedelivered != 0 {
				t.Fatalf("the server delivered %d times (%d redelivered), want once", info.Delivered.Consumer, info.NumRedelivered)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the ack did not reach the server")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
