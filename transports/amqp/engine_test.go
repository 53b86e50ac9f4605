package amqp

import (
	"context"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/transports"
)

// Defect 3 of the first wave: with a prefetch above Concurrency, a graceful
// stop requeued the deliveries buffered in the client, which came back
// Redelivered and were counted as attempts though no handler ran. They go
// back uncounted now: only the delivery in a handler counts.
func TestGracefulStopCountsNoBufferedDelivery(t *testing.T) {
	raw := testURL(t, "", "prefetch=10")
	held := make(chan string, 1)
	release := make(chan struct{})
	a := newTestBus(t, raw, "svc", "p1", func(c *bus.Config) { c.ShutdownTimeout = 50 * time.Millisecond })
	_ = bus.Listen(a, itemEvent, "work", func(ctx context.Context, d bus.Delivery[item]) error {
		select {
		case held <- d.ID:
		default:
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return ctx.Err()
	}, bus.WithConcurrency(1))
	startBus(t, a)
	var ids []string
	for i := range 6 {
		ids = append(ids, fireItem(t, a, i))
	}
	var inHandler string
	select {
	case inHandler = <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery reached the handler")
	}
	_ = a.Close()
	close(release)

	var mu sync.Mutex
	attempts := map[string]int{}
	b := newTestBus(t, raw, "svc", "p2")
	_ = bus.Listen(b, itemEvent, "work", func(ctx context.Context, d bus.Delivery[item]) error {
		mu.Lock()
		defer mu.Unlock()
		if _, seen := attempts[d.ID]; !seen {
			attempts[d.ID] = d.Attempt
		}
		return nil
	})
	startBus(t, b)
	eventually(t, 20*time.Second, "every event in the second process", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(attempts) == len(ids)
	})
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		want := 1
		if id == inHandler {
			want = 2
		}
		if attempts[id] != want {
			t.Errorf("event %s: attempt %d after a graceful stop, want %d (in a handler: %v)", id, attempts[id], want, id == inHandler)
		}
	}
}

// Defect 6 of the first wave: one queue per group receives every event the
// group is bound to; a subscription must be handed only the event it
// subscribed to (DeliveryInfo.Topic included), whatever the other
// subscription of the group consumes.
func TestOneGroupTwoEvents(t *testing.T) {
	raw := testURL(t, "", "")
	tr := openForTest(t, raw)
	sub, err := tr.NewSubscriber(transports.SubscriberConfig{Group: "g", Consumer: "c", AckTimeout: time.Minute, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	topics := []string{"two.alpha", "two.beta"}
	type got struct{ topic, info, fired string }
	var mu sync.Mutex
	var seen []got
	for _, topic := range topics {
		ch, err := sub.Subscribe(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for m := range ch {
				mu.Lock()
				seen = append(seen, got{topic: topic, info: transports.Info(m).Topic, fired: m.Metadata.Get("fired")})
				mu.Unlock()
				m.Ack()
			}
		}()
	}
	const per = 20
	for _, topic := range topics {
		for range per {
			m := message.NewMessage(uuid.NewString(), []byte(`{}`))
			m.Metadata.Set("fired", topic)
			if err := tr.Publish(topic, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, 20*time.Second, "every event handed out", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) >= 2*per
	})
	mu.Lock()
	defer mu.Unlock()
	counts := map[string]int{}
	for _, g := range seen {
		counts[g.topic]++
		if g.fired != g.topic || g.info != g.topic {
			t.Errorf("subscription %s handed an event fired as %s (DeliveryInfo.Topic %s)", g.topic, g.fired, g.info)
		}
	}
	if counts[topics[0]] != per || counts[topics[1]] != per {
		t.Errorf("handed out %v, want %d of each", counts, per)
	}
}

// openForTest opens the transport of raw; it is closed at test end.
func openForTest(t *testing.T, raw string) *Transport {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := Open(context.Background(), u, transports.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// TestQueueDeletedUnderConsumer: when the group queue is deleted while a
// subscriber consumes it, the broker cancels the consumer and leaves its
// channel open. The subscriber declares the queue again and consumes it:
// events fired afterwards are handed out (not a loop of lost channels).
func TestQueueDeletedUnderConsumer(t *testing.T) {
	raw := testURL(t, "", "")
	tr := openForTest(t, raw)
	sub, err := tr.NewSubscriber(transports.SubscriberConfig{Group: "g", Consumer: "c", AckTimeout: time.Minute, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := sub.Subscribe(ctx, "deleted.queue")
	if err != nil {
		t.Fatal(err)
	}
	queue := tr.tp.groupQueue("g")
	ch := rawChannel(t)
	if _, err := ch.QueueDelete(queue, false, false, false); err != nil {
		t.Fatal(err)
	}
	// The queue comes back once the subscriber consumes again; events fired
	// before that have no queue to go to, so fire until one arrives.
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case m := <-msgs:
			if !m.Ack() {
				t.Fatal("ack refused")
			}
			return
		case <-tick.C:
			if err := tr.Publish("deleted.queue", message.NewMessage(uuid.NewString(), []byte(`{}`))); err != nil {
				t.Fatal(err)
			}
		case <-deadline:
			t.Fatal("no event handed out after the group queue was deleted and fired to again")
		}
	}
}
