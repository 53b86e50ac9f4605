package amqp

import (
	"context"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/driver"
)

// TestTrackerSettlesInAnyOrder settles deliveries from many goroutines in
// a random order, some nacked, flushing as it goes: the broker must end up
// with exactly the nacked ones back in the queue, and never see an unknown
// delivery tag (which would close the channel).
func TestTrackerSettlesInAnyOrder(t *testing.T) {
	requireBroker(t)
	q := "bt-acker-" + strings.ToLower(randText())
	ch := rawChannel(t)
	if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = rawChannel(t).QueueDelete(q, false, false, false) })
	const n = 300
	for i := range n {
		if err := ch.PublishWithContext(context.Background(), "", q, false, false, amqp091.Publishing{Body: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "the queue filled", func() bool { return queueLen(t, q) == n })

	cch := rawChannel(t)
	closed := cch.NotifyClose(make(chan *amqp091.Error, 1))
	if err := cch.Qos(n, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := cch.Consume(q, "acker-test", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var tr tracker
	settle := func(tag uint64, st ackState) {
		mu.Lock()
		defer mu.Unlock()
		tr.mark(tag, st)
		if tag%3 == 0 {
			if err := tr.flush(cch); err != nil {
				t.Error(err)
			}
		}
	}
	var got []amqp091.Delivery
	for len(got) < n {
		select {
		case d := <-deliveries:
			tr.track(d.DeliveryTag)
			got = append(got, d)
		case <-time.After(10 * time.Second):
			t.Fatalf("got %d of %d deliveries", len(got), n)
		}
	}
	if err := cch.Cancel("acker-test", false); err != nil {
		t.Fatal(err)
	}
	rand.Shuffle(len(got), func(i, j int) { got[i], got[j] = got[j], got[i] })
	var nacked []string
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				d := got[i]
				if d.DeliveryTag%10 == 0 {
					settle(d.DeliveryTag, stateNack)
				} else {
					settle(d.DeliveryTag, stateAck)
				}
				if i%17 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	for _, d := range got {
		if d.DeliveryTag%10 == 0 {
			nacked = append(nacked, string(d.Body))
		}
	}
	wg.Wait()
	if err := tr.flush(cch); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the nacked deliveries back in the queue", func() bool { return queueLen(t, q) == len(nacked) })
	select {
	case e := <-closed:
		t.Fatalf("the channel closed: %v", e)
	default:
	}
	var back []string
	gch := rawChannel(t)
	for {
		d, ok, err := gch.Get(q, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		back = append(back, string(d.Body))
	}
	slices.Sort(back)
	slices.Sort(nacked)
	if !slices.Equal(back, nacked) {
		t.Errorf("queue holds %v, want the nacked %v", back, nacked)
	}
}

func randText() string {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 10)
	for i := range b {
		b[i] = letters[rand.IntN(len(letters))]
	}
	return string(b)
}

// TestAckIsSent: the driver sends an ack at once, fewer than half the
// prefetch window settled (the engine is the one that holds acks back):
// with the window full, the broker delivers the next message only once it
// has it.
func TestAckIsSent(t *testing.T) {
	tr := openForTest(t, testURL(t, "", "prefetch=4"))
	sub, err := tr.Driver().Open(context.Background(), "held.ack", transports.SubscriberConfig{
		Group: "held", Consumer: "c1", AckTimeout: time.Minute, Concurrency: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for range 5 {
		if err := tr.Publish("held.ack", message.NewMessage(uuid.NewString(), []byte(`{}`))); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []*driver.Message
	for len(got) < 4 && ctx.Err() == nil {
		msgs, err := sub.Receive(ctx, 4-len(got), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, msgs...)
	}
	if len(got) != 4 {
		t.Fatalf("received %d deliveries, want the prefetch window of 4", len(got))
	}
	if err := sub.Ack(ctx, []driver.AckID{got[0].AckID}); err != nil {
		t.Fatal(err)
	}
	for ctx.Err() == nil {
		msgs, err := sub.Receive(ctx, 1, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 1 {
			return
		}
	}
	t.Fatal("the fifth message never came: the held ack was not sent")
}
