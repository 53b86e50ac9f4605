package amqp

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v2/pkg/amqp"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/transports"
)

type item struct {
	N int `json:"n"`
}

var itemEvent = bus.NewEvent[item]("amqp_test", "item_added")

func fastRetry(d time.Duration) bus.RetryPolicy {
	return bus.RetryPolicy{Tries: 1, RedeliveryDelay: func(int) time.Duration { return d }}
}

func fireItem(t testing.TB, b *bus.Bus, n int) string {
	t.Helper()
	id, err := bus.Fire(context.Background(), b, itemEvent, item{N: n})
	if err != nil {
		t.Fatalf("Fire: %v", err)
	}
	return id
}

// seen records deliveries.
type seen struct {
	mu       sync.Mutex
	attempts map[string][]int
	times    map[string][]time.Time
	meta     map[string]map[string]string
}

func newSeen() *seen {
	return &seen{attempts: map[string][]int{}, times: map[string][]time.Time{}, meta: map[string]map[string]string{}}
}

func (s *seen) add(d bus.Delivery[item]) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts[d.ID] = append(s.attempts[d.ID], d.Attempt)
	s.times[d.ID] = append(s.times[d.ID], time.Now())
	s.meta[d.ID] = d.Metadata
}

func (s *seen) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.attempts[id])
}

func (s *seen) get(id string) ([]int, []time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.attempts[id]), slices.Clone(s.times[id])
}

// TestTopology checks the exchange, queues, bindings and arguments by
// re-declaring them with what the docs promise: RabbitMQ refuses a
// declaration whose type, durability or arguments differ
// (PRECONDITION_FAILED), so a successful one proves the match.
func TestTopology(t *testing.T) {
	for _, qt := range []string{QueueClassic, QueueQuorum} {
		t.Run(qt, func(t *testing.T) {
			raw := testURL(t, "", "queue_type="+qt+"&maxlen=1000")
			o := optionsOf(t, raw)
			tp := topology{o: o}
			b := newTestBus(t, raw, "shop", "p1")
			failed := make(chan struct{}, 1)
			if err := bus.Listen(b, itemEvent, "audit", func(ctx context.Context, d bus.Delivery[item]) error {
				if d.Attempt == 1 {
					return errors.New("fail once")
				}
				failed <- struct{}{}
				return nil
			}, bus.WithRetry(fastRetry(2*time.Second))); err != nil {
				t.Fatal(err)
			}
			startBus(t, b)
			fireItem(t, b, 1)
			<-failed

			ch := rawChannel(t)
			must := func(what string, err error) {
				t.Helper()
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
			}
			must("exchange is a durable topic exchange", ch.ExchangeDeclare(o.Exchange, "topic", true, false, false, false, nil))
			group := "shop-audit"
			base := func() amqp091.Table {
				if qt == QueueClassic {
					return amqp091.Table{"x-queue-type": qt, "x-queue-version": int64(2)}
				}
				return amqp091.Table{"x-queue-type": qt}
			}
			args := base()
			args["x-max-length"], args["x-overflow"] = int64(1000), "drop-head"
			_, err := ch.QueueDeclare(o.QueuePrefix+group, true, false, false, false, args)
			must("group queue is durable, "+qt+", capped by maxlen", err)
			_, err = ch.QueueDeclare(o.QueuePrefix+group+".dead", true, false, false, false, base())
			must("dead-letter queue", err)
			delay := base()
			delay["x-message-ttl"], delay["x-dead-letter-exchange"], delay["x-dead-letter-routing-key"] = int64(2000), "", o.QueuePrefix+group
			if qt == QueueQuorum {
				delay["x-dead-letter-strategy"] = "at-least-once"
				delay["x-overflow"] = "reject-publish"
			}
			_, err = ch.QueueDeclare(o.QueuePrefix+group+".retry.2s", true, false, false, false, delay)
			must("delay queue with TTL 2s dead-lettering into the group queue", err)
			if tp.delayQueue(group, 2*time.Second) != o.QueuePrefix+group+".retry.2s" {
				t.Errorf("delay queue name %q", tp.delayQueue(group, 2*time.Second))
			}
			// The declarations are checked: a wrong argument is refused.
			_, err = ch.QueueDeclare(o.QueuePrefix+group, true, false, false, false, amqp091.Table{"x-queue-type": "stream"})
			var ae *amqp091.Error
			if !errors.As(err, &ae) || ae.Code != amqp091.PreconditionFailed {
				t.Fatalf("re-declaring with another queue type = %v, want PRECONDITION_FAILED", err)
			}

			// The group queue is bound with the event name: a raw publish
			// with that routing key reaches it (the listener handles it).
			ch2 := rawChannel(t)
			got := make(chan string, 1)
			b2 := newTestBus(t, raw, "shop", "p2")
			_ = bus.Listen(b2, bus.NewEvent[item]("amqp_test", "other"), "other", func(ctx context.Context, d bus.Delivery[item]) error {
				got <- d.ID
				return nil
			})
			startBus(t, b2)
			must("publish", ch2.PublishWithContext(context.Background(), o.Exchange, "amqp_test.other", false, false,
				amqp091.Publishing{MessageId: "raw-1", Body: []byte(`{"n":1}`)}))
			select {
			case id := <-got:
				if id != "raw-1" {
					t.Errorf("got %s", id)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("raw publish with the event name as routing key not delivered")
			}
		})
	}
}

// TestRetryWaitsInDelayQueue: a failed event sits in the group's delay
// queue for the backoff and comes back with the next attempt number, with
// gaps of at least the ladder step: a backoff, not a requeue loop.
func TestRetryWaitsInDelayQueue(t *testing.T) {
	raw := testURL(t, "", "retry_delays=300ms,600ms")
	o := optionsOf(t, raw)
	b := newTestBus(t, raw, "svc", "p1")
	s := newSeen()
	if err := bus.Listen(b, itemEvent, "flaky", func(ctx context.Context, d bus.Delivery[item]) error {
		s.add(d)
		if d.Attempt < 3 {
			return errors.New("not yet")
		}
		return nil
	}, bus.WithRetry(bus.RetryPolicy{Tries: 1, RedeliveryDelay: func(a int) time.Duration {
		return time.Duration(a) * 250 * time.Millisecond // 250ms -> step 300ms, 500ms -> step 600ms
	}})); err != nil {
		t.Fatal(err)
	}
	startBus(t, b)
	id := fireItem(t, b, 1)
	delayQ := o.QueuePrefix + "svc-flaky.retry.300ms"
	eventually(t, 10*time.Second, "the first failure parked in the 300ms delay queue", func() bool {
		return s.count(id) == 1 && queueLen(t, delayQ) == 1
	})
	eventually(t, 10*time.Second, "three deliveries", func() bool { return s.count(id) == 3 })
	att, times := s.get(id)
	if !slices.Equal(att, []int{1, 2, 3}) {
		t.Errorf("attempts = %v, want [1 2 3]", att)
	}
	for i, min := range []time.Duration{300 * time.Millisecond, 600 * time.Millisecond} {
		if gap := times[i+1].Sub(times[i]); gap < min {
			t.Errorf("delivery %d came %s after the previous one, want at least the %s step", i+2, gap, min)
		}
	}
	if n := queueLen(t, o.QueuePrefix+"svc-flaky.retry.600ms"); n != 0 {
		t.Errorf("600ms delay queue holds %d messages after the retry", n)
	}
}

// TestDeadLetterQueue: after MaxDeliveries the event is in "{group}.dead"
// with reason headers; it can be listed, replayed and purged.
func TestDeadLetterQueue(t *testing.T) {
	raw := testURL(t, "", "")
	o := optionsOf(t, raw)
	b := newTestBus(t, raw, "svc", "p1")
	s := newSeen()
	var healed atomic.Bool
	if err := bus.Listen(b, itemEvent, "fails", func(ctx context.Context, d bus.Delivery[item]) error {
		s.add(d)
		if healed.Load() {
			return nil
		}
		return fmt.Errorf("downstream said no to %d", d.Payload.N)
	}, bus.WithMaxDeliveries(2), bus.WithRetry(fastRetry(100*time.Millisecond))); err != nil {
		t.Fatal(err)
	}
	startBus(t, b)
	id := fireItem(t, b, 7)
	other := fireItem(t, b, 8)
	store := b.Transport().(transports.DeadLetterStore)
	var list []transports.DeadLetter
	eventually(t, 20*time.Second, "two dead letters", func() bool {
		var err error
		list, err = store.DeadLetters(context.Background(), "svc-fails", 0)
		return err == nil && len(list) == 2
	})
	// Raw contents of the queue.
	ch := rawChannel(t)
	d, ok, err := ch.Get(o.QueuePrefix+"svc-fails.dead", false)
	if err != nil || !ok {
		t.Fatalf("get dead letter: %v %v", ok, err)
	}
	if d.Headers[HeaderDeadReason] != "downstream said no to 7" && d.Headers[HeaderDeadReason] != "downstream said no to 8" {
		t.Errorf("reason header = %v", d.Headers[HeaderDeadReason])
	}
	for _, h := range []string{HeaderDeadID, HeaderDeadAttempts, HeaderDeadAt, HeaderDeadGroup, HeaderTopic, wamqp.DefaultMessageUUIDHeaderKey, "ce-type"} {
		if _, ok := d.Headers[h].(string); !ok {
			t.Errorf("dead letter header %s = %#v, want a string", h, d.Headers[h])
		}
	}
	for h := range d.Headers {
		if brokerHeader(h) {
			t.Errorf("dead letter keeps broker header %s", h)
		}
	}
	_ = ch.Close() // puts it back

	byID := map[string]transports.DeadLetter{}
	for _, dl := range list {
		byID[dl.Message.UUID] = dl
	}
	dl := byID[id]
	if dl.ID == "" || dl.Group != "svc-fails" || dl.Attempts != 2 || dl.Topic != itemEvent.Name() ||
		!strings.Contains(dl.Reason, "downstream said no to 7") || time.Since(dl.DeadAt) > time.Minute ||
		string(dl.Message.Payload) != `{"n":7}` || dl.Message.Metadata.Get("ce-type") != itemEvent.Name() {
		t.Errorf("dead letter = %+v (payload %s, metadata %v)", dl, dl.Message.Payload, dl.Message.Metadata)
	}
	if one, err := store.DeadLetters(context.Background(), "svc-fails", 1); err != nil || len(one) != 1 {
		t.Errorf("DeadLetters limit 1 = %d, %v", len(one), err)
	}

	// Replay: a fresh delivery, attempt 1, same event ID.
	healed.Store(true)
	if err := store.ReplayDeadLetter(context.Background(), "svc-fails", dl.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the replayed event handled", func() bool { return s.count(id) == 3 })
	if att, _ := s.get(id); att[2] != 1 {
		t.Errorf("replayed delivery has attempt %d, want 1", att[2])
	}
	if err := store.ReplayDeadLetter(context.Background(), "svc-fails", dl.ID); !errors.Is(err, ErrDeadLetterNotFound) {
		t.Errorf("second replay = %v, want ErrDeadLetterNotFound", err)
	}
	left, _ := store.DeadLetters(context.Background(), "svc-fails", 0)
	if len(left) != 1 || left[0].Message.UUID != other {
		t.Fatalf("after replay the queue holds %v", left)
	}
	n, err := store.PurgeDeadLetters(context.Background(), "svc-fails")
	if err != nil || n != 1 {
		t.Errorf("purge = %d, %v; want 1", n, err)
	}
	if left, _ := store.DeadLetters(context.Background(), "svc-fails", 0); len(left) != 0 {
		t.Errorf("after purge %d dead letters", len(left))
	}
	if n, err := store.PurgeDeadLetters(context.Background(), "no-such-group"); err != nil || n != 0 {
		t.Errorf("purge of an unknown group = %d, %v", n, err)
	}
	if l, err := store.DeadLetters(context.Background(), "no-such-group", 0); err != nil || len(l) != 0 {
		t.Errorf("list of an unknown group = %v, %v", l, err)
	}
}

// TestForeignHeaders: a message published by another AMQP client with
// headers of every type is handled, its headers as strings.
func TestForeignHeaders(t *testing.T) {
	raw := testURL(t, "", "")
	o := optionsOf(t, raw)
	b := newTestBus(t, raw, "svc", "p1")
	got := make(chan bus.Delivery[item], 1)
	_ = bus.Listen(b, itemEvent, "reader", func(ctx context.Context, d bus.Delivery[item]) error {
		got <- d
		return nil
	})
	startBus(t, b)
	ch := rawChannel(t)
	at := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	err := ch.PublishWithContext(context.Background(), o.Exchange, itemEvent.Name(), false, false, amqp091.Publishing{
		MessageId: "foreign-1", ContentType: "application/json", Body: []byte(`{"n":5}`),
		Headers: amqp091.Table{
			"count": int32(3), "big": int64(9000000000), "ratio": 0.5, "ok": true, "when": at,
			"blob": []byte("bytes"), "price": amqp091.Decimal{Scale: 1, Value: 15},
			"nested":           amqp091.Table{"a": int8(1), "list": []any{"x", int16(2)}},
			"x-delivery-count": int64(0),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-got:
		want := map[string]string{"count": "3", "big": "9000000000", "ratio": "0.5", "ok": "true",
			"when": "2024-01-02T03:04:05Z", "blob": "bytes", "price": "1.5", "nested": `{"a":1,"list":["x",2]}`,
			"content-type": "application/json"}
		for k, v := range want {
			if d.Metadata[k] != v {
				t.Errorf("metadata %s = %q, want %q", k, d.Metadata[k], v)
			}
		}
		if d.ID != "foreign-1" || d.Payload.N != 5 || d.Attempt != 1 {
			t.Errorf("delivery = %+v", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("message with foreign header types not delivered")
	}
}

// TestConcurrencyWithoutWaitingForAcks: up to Concurrency handlers run at
// once on one listener, never more.
func TestConcurrencyWithoutWaitingForAcks(t *testing.T) {
	raw := testURL(t, "", "")
	b := newTestBus(t, raw, "svc", "p1")
	release := make(chan struct{})
	var running, peak, done atomic.Int64
	_ = bus.Listen(b, itemEvent, "par", func(ctx context.Context, d bus.Delivery[item]) error {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		running.Add(-1)
		done.Add(1)
		return nil
	}, bus.WithConcurrency(4))
	startBus(t, b)
	for i := range 10 {
		fireItem(t, b, i)
	}
	eventually(t, 10*time.Second, "4 handlers running at once", func() bool { return running.Load() == 4 })
	close(release)
	eventually(t, 10*time.Second, "every event handled", func() bool { return done.Load() == 10 })
	if p := peak.Load(); p != 4 {
		t.Errorf("peak concurrency %d, want 4", p)
	}
}

// TestCrashLoopReachesMaxDeliveries: an event whose handler kills the
// process every time (its connection dies with the delivery unacked) is
// counted on every redelivery, and dead-lettered after MaxDeliveries,
// even on a classic queue, which only flags one redelivery.
func TestCrashLoopReachesMaxDeliveries(t *testing.T) {
	raw := testURL(t, "", "")
	var attempts []int
	var mu sync.Mutex
	var id string
	for round := 0; round < 4; round++ {
		held := make(chan struct{}, 1)
		release := make(chan struct{})
		b := newTestBus(t, raw, "svc", fmt.Sprintf("p%d", round))
		_ = bus.Listen(b, itemEvent, "crashy", func(ctx context.Context, d bus.Delivery[item]) error {
			mu.Lock()
			attempts = append(attempts, d.Attempt)
			mu.Unlock()
			held <- struct{}{}
			<-release
			return nil
		}, bus.WithMaxDeliveries(3))
		startBus(t, b)
		if round == 0 {
			id = fireItem(t, b, 1)
		}
		if round == 3 {
			// The fourth delivery is over MaxDeliveries: dead-lettered
			// without running the handler.
			eventually(t, 10*time.Second, "the crash-looping event dead-lettered", func() bool {
				l, err := b.Transport().(transports.DeadLetterStore).DeadLetters(context.Background(), "svc-crashy", 0)
				return err == nil && len(l) == 1 && l[0].Message.UUID == id && l[0].Attempts == 4
			})
			close(release)
			break
		}
		select {
		case <-held:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: event not delivered", round)
		}
		// The process dies: its connections close with the delivery unacked.
		_ = b.Transport().Close()
		close(release)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(attempts, []int{1, 2, 3}) {
		t.Errorf("attempts = %v, want [1 2 3]", attempts)
	}
}

// TestSince: Beginning or a time on a group whose queue does not exist is
// ErrUnsupported; on an existing queue it is ignored (the group exists).
func TestSince(t *testing.T) {
	raw := testURL(t, "", "")
	b := newTestBus(t, raw, "svc", "p1")
	_ = bus.Listen(b, itemEvent, "late", func(context.Context, bus.Delivery[item]) error { return nil }, bus.WithSince(bus.SinceTime(time.Now().Add(-time.Hour))))
	if err := b.Start(context.Background()); !errors.Is(err, transports.ErrUnsupported) {
		t.Fatalf("Start = %v, want ErrUnsupported", err)
	}
	first := newTestBus(t, raw, "svc", "p2")
	_ = bus.Listen(first, itemEvent, "late", func(context.Context, bus.Delivery[item]) error { return nil })
	startBus(t, first)
	_ = first.Close()
	again := newTestBus(t, raw, "svc", "p3")
	_ = bus.Listen(again, itemEvent, "late", func(context.Context, bus.Delivery[item]) error { return nil }, bus.WithSince(bus.Beginning))
	startBus(t, again)
}

// TestReconnect: with every connection dropped and the broker unreachable,
// Fire fails; meanwhile the topology is deleted. Once the broker is back,
// the transport reconnects, declares exchange and queues again, and the
// listener gets events fired afterwards.
func TestReconnect(t *testing.T) {
	p := startProxy(t)
	raw := testURL(t, p.url(t), "reconnect_max=200ms")
	o := optionsOf(t, raw)
	b := newTestBus(t, raw, "svc", "p1")
	s := newSeen()
	_ = bus.Listen(b, itemEvent, "work", func(ctx context.Context, d bus.Delivery[item]) error {
		s.add(d)
		return nil
	})
	startBus(t, b)
	before := fireItem(t, b, 1)
	eventually(t, 10*time.Second, "the event before the outage", func() bool { return s.count(before) == 1 })

	p.stop()
	if _, err := bus.Fire(context.Background(), b, itemEvent, item{N: 2}); err == nil {
		t.Fatal("Fire during the outage returned nil")
	} else if !errors.Is(err, ErrNotConnected) && !errors.Is(err, ErrNotConfirmed) {
		t.Errorf("Fire during the outage = %v, want ErrNotConnected or ErrNotConfirmed", err)
	}
	// The broker loses the topology meanwhile.
	ch := rawChannel(t)
	if _, err := ch.QueueDelete(o.QueuePrefix+"svc-work", false, false, false); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDelete(o.Exchange, false, false); err != nil {
		t.Fatal(err)
	}
	p.start(t)

	// The listener declares its queue again (bound before it consumes).
	eventually(t, 20*time.Second, "the group queue declared again, with its consumer", func() bool {
		_, consumers := queueInfo(t, o.QueuePrefix+"svc-work")
		return consumers == 1
	})
	var after string
	eventually(t, 20*time.Second, "Fire to succeed after the outage", func() bool {
		id, err := bus.Fire(context.Background(), b, itemEvent, item{N: 3})
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			return false
		}
		after = id
		return true
	})
	eventually(t, 20*time.Second, "the listener to get the event fired after the outage", func() bool { return s.count(after) == 1 })
}

// TestMaxLen: maxlen=N caps every group queue at N, oldest dropped first.
func TestMaxLen(t *testing.T) {
	raw := testURL(t, "", "maxlen=5")
	o := optionsOf(t, raw)
	b := newTestBus(t, raw, "svc", "p1")
	_ = bus.Listen(b, itemEvent, "capped", func(context.Context, bus.Delivery[item]) error { return nil })
	startBus(t, b)
	_ = b.Close() // the queue stays, nobody consumes it
	producer := newTestBus(t, raw, "producer", "p0")
	for i := range 20 {
		fireItem(t, producer, i)
	}
	if n := queueLen(t, o.QueuePrefix+"svc-capped"); n != 5 {
		t.Fatalf("queue holds %d messages, want 5", n)
	}
	d, ok, err := rawChannel(t).Get(o.QueuePrefix+"svc-capped", true)
	if err != nil || !ok || string(d.Body) != `{"n":15}` {
		t.Fatalf("oldest kept = %s (%v %v), want n=15", d.Body, ok, err)
	}
}

// TestConcurrentFiresShareThePool: many goroutines fire at once over a
// pool of 2 confirm channels; every Fire is confirmed and delivered.
func TestConcurrentFiresShareThePool(t *testing.T) {
	raw := testURL(t, "", "channel_pool_size=2")
	b := newTestBus(t, raw, "svc", "p1")
	var got sync.Map
	var n atomic.Int64
	_ = bus.Listen(b, itemEvent, "sink", func(ctx context.Context, d bus.Delivery[item]) error {
		if _, dup := got.LoadOrStore(d.ID, true); !dup {
			n.Add(1)
		}
		return nil
	}, bus.WithConcurrency(32))
	startBus(t, b)
	const workers, each = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := bus.Fire(context.Background(), b, itemEvent, item{N: w*each + i}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "every event delivered", func() bool { return n.Load() == workers*each })
	tr := b.Transport().(*Transport)
	opened := 0
	for _, s := range tr.pool.slots {
		s.mu.Lock()
		if s.cur != nil {
			opened++
		}
		s.mu.Unlock()
	}
	if opened != 2 {
		t.Errorf("%d confirm channels opened, want the pool of 2", opened)
	}
}

// TestOpenErrors: an unreachable broker fails at Open with a clear error
// that does not print the password.
func TestOpenErrors(t *testing.T) {
	_, err := bus.New(bus.Config{Service: "svc", Transport: "amqp://guest:s3cret@127.0.0.1:1/"})
	if err == nil {
		t.Fatal("bus.New on a closed port succeeded")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error prints the password: %v", err)
	}
	_, err = bus.New(bus.Config{Service: "svc", Transport: "amqp://127.0.0.1/?queue_type=fast"})
	if !errors.Is(err, transports.ErrInvalidURL) {
		t.Errorf("bad option: %v, want ErrInvalidURL", err)
	}
}

// TestNamesOnTheBroker: the consumer tag is the process name and the
// connections carry the service and process names (checked with
// rabbitmqctl, when this host has it).
func TestNamesOnTheBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("rabbitmqctl takes seconds: run without -short")
	}
	raw := testURL(t, "", "")
	o := optionsOf(t, raw)
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		t.Skip("rabbitmqctl not on this host")
	}
	process := "proc-" + strings.ToLower(randText())
	b := newTestBus(t, raw, "shop", process)
	_ = bus.Listen(b, itemEvent, "audit", func(context.Context, bus.Delivery[item]) error { return nil })
	startBus(t, b)
	ctl := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "rabbitmqctl", append([]string{"-q"}, args...)...).CombinedOutput()
		if err != nil {
			t.Skipf("rabbitmqctl %v: %v: %s", args, err, out)
		}
		return string(out)
	}
	consumers := ctl("list_consumers", "queue_name", "consumer_tag")
	if !strings.Contains(consumers, o.QueuePrefix+"shop-audit\t"+process) {
		t.Errorf("no consumer tagged %s on %sshop-audit:\n%s", process, o.QueuePrefix, consumers)
	}
	conns := ctl("list_connections", "client_properties")
	for _, name := range []string{"busline shop publish", "busline shop " + process + " consume"} {
		if !strings.Contains(conns, name) {
			t.Errorf("no connection named %q:\n%s", name, conns)
		}
	}
}

// TestMaxLenSparesTheSchedule: maxlen caps group queues, not the queue
// that holds scheduled events once due: while no mover runs they pile up
// there, and dropping its head would lose them.
func TestMaxLenSparesTheSchedule(t *testing.T) {
	raw := testURL(t, "", "maxlen=5")
	o := optionsOf(t, raw)
	producer := newTestBus(t, raw, "producer", "p0")
	startBus(t, producer)
	for i := range 20 {
		if _, err := bus.Fire(context.Background(), producer, itemEvent, item{N: i}, bus.WithDelay(2*time.Second)); err != nil {
			t.Fatalf("Fire #%d: %v", i, err)
		}
	}
	_ = producer.Close() // the only mover: the events expire into the schedule queue and wait there
	queue := o.QueuePrefix + scheduleGroup
	eventually(t, 20*time.Second, "the 20 due events in "+queue, func() bool { return queueLen(t, queue) == 20 })
}
