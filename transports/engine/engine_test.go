package engine_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/driver"
	"github.com/busline/busline/transports/engine"
	"github.com/busline/busline/transports/memory"
)

func subscribe(t *testing.T, tr *memory.Transport, concurrency int) (<-chan *message.Message, message.Subscriber, context.CancelFunc) {
	t.Helper()
	sub, err := tr.NewSubscriber(transports.SubscriberConfig{Group: "g", Consumer: "c", AckTimeout: time.Minute, Concurrency: concurrency})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := sub.Subscribe(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	return ch, sub, cancel
}

func publish(t *testing.T, tr *memory.Transport, n int) {
	t.Helper()
	for range n {
		if err := tr.Publish("t", message.NewMessage(time.Now().String(), []byte("x"))); err != nil {
			t.Fatal(err)
		}
	}
}

func next(t *testing.T, ch <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("channel closed")
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message")
	}
	return nil
}

// A message's context ends once it is acked or nacked (Watermill's
// Subscriber contract), and carries its DeliveryInfo until then.
func TestMessageContextEndsOnSettle(t *testing.T) {
	tr := memory.New(memory.NewBroker(0))
	t.Cleanup(func() { _ = tr.Close() })
	ch, _, _ := subscribe(t, tr, 2)
	publish(t, tr, 2)
	a, b := next(t, ch), next(t, ch)
	for _, m := range []*message.Message{a, b} {
		if m.Context().Err() != nil || transports.DeliveryInfoFrom(m.Context()) == nil {
			t.Fatal("a handed-out message's context is done or has no DeliveryInfo")
		}
	}
	a.Ack()
	transports.Info(b).RetryAfter = time.Hour
	b.Nack()
	for _, m := range []*message.Message{a, b} {
		select {
		case <-m.Context().Done():
		case <-time.After(10 * time.Second):
			t.Fatal("the context of a settled message is not cancelled")
		}
	}
}

// At most Concurrency messages are out, acked or nacked or not.
func TestConcurrencyBound(t *testing.T) {
	tr := memory.New(memory.NewBroker(0))
	t.Cleanup(func() { _ = tr.Close() })
	ch, _, _ := subscribe(t, tr, 3)
	publish(t, tr, 10)
	held := []*message.Message{next(t, ch), next(t, ch), next(t, ch)}
	select {
	case m := <-ch:
		t.Fatalf("a fourth message %s handed out with Concurrency 3", m.UUID)
	case <-time.After(100 * time.Millisecond):
	}
	held[0].Ack()
	next(t, ch)
}

// A nack comes back after RetryAfter with the next attempt; without a
// RetryAfter the default backoff applies (never at once).
func TestNackRedeliversAfterDelay(t *testing.T) {
	tr := memory.New(memory.NewBroker(0))
	t.Cleanup(func() { _ = tr.Close() })
	ch, _, _ := subscribe(t, tr, 1)
	publish(t, tr, 1)
	m := next(t, ch)
	const delay = 200 * time.Millisecond
	transports.Info(m).RetryAfter = delay
	at := time.Now()
	m.Nack()
	m2 := next(t, ch)
	if time.Since(at) < delay || m2.UUID != m.UUID || transports.Info(m2).Attempt != 2 {
		t.Fatalf("redelivered %s attempt %d after %s; want %s attempt 2 after %s", m2.UUID, transports.Info(m2).Attempt, time.Since(at), m.UUID, delay)
	}
	at = time.Now()
	m2.Nack() // no RetryAfter: DefaultNackDelay = 1s
	select {
	case m3 := <-ch:
		t.Fatalf("redelivered %s %s after a nack without RetryAfter: a hot loop", m3.UUID, time.Since(at))
	case <-time.After(500 * time.Millisecond):
	}
}

// Acks and nacks made after Subscribe's context ended still reach the
// broker, until Close; the channel closes once reading stopped.
func TestLateSettles(t *testing.T) {
	b := memory.NewBroker(0)
	tr := memory.New(b)
	t.Cleanup(func() { _ = tr.Close() })
	ch, sub, cancel := subscribe(t, tr, 2)
	publish(t, tr, 2)
	x, y := next(t, ch), next(t, ch)
	cancel()
	for range ch {
	}
	x.Ack()
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	_ = y // left unsettled: pending for c
	for _, g := range b.Groups("t") {
		if g.Pending != 1 {
			t.Fatalf("pending %d after one late ack of two, want 1", g.Pending)
		}
	}
}

// fakeDriver is a driver whose reads are scripted.
type fakeDriver struct {
	inline   bool // Capabilities.SettleInline
	mu       sync.Mutex
	receives []func() ([]*driver.Message, error)
	pendings atomic.Int32
	nacks    []driver.Nack
	acks     []driver.AckID
}

func (f *fakeDriver) Open(context.Context, string, transports.SubscriberConfig) (driver.Subscription, error) {
	return f, nil
}
func (f *fakeDriver) Capabilities() driver.Capabilities {
	return driver.Capabilities{PendingList: true, SettleInline: f.inline}
}
func (f *fakeDriver) Receive(ctx context.Context, n int, wait time.Duration) ([]*driver.Message, error) {
	f.mu.Lock()
	if len(f.receives) > 0 {
		r := f.receives[0]
		f.receives = f.receives[1:]
		f.mu.Unlock()
		return r()
	}
	f.mu.Unlock()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(wait):
		return nil, nil
	}
}
func (f *fakeDriver) Pending(context.Context, string, int) ([]*driver.Message, string, error) {
	f.pendings.Add(1)
	return nil, "", nil
}
func (f *fakeDriver) Claim(context.Context, time.Duration, string, int) ([]*driver.Message, string, error) {
	return nil, "", nil
}
func (f *fakeDriver) KeepAlive(context.Context, []driver.AckID) error { return nil }
func (f *fakeDriver) Record(context.Context, []driver.Attempt) error  { return nil }
func (f *fakeDriver) Close() error                                    { return nil }
func (f *fakeDriver) Ack(_ context.Context, ids []driver.AckID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.acks = append(f.acks, ids...)
	return nil
}
func (f *fakeDriver) Nack(_ context.Context, n []driver.Nack) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nacks = append(f.nacks, n...)
	return nil
}

// A broken read makes the engine read own pending again (as at start);
// a delivery of another topic is never handed out but returned, uncounted.
func TestBrokenReadAndForeignTopic(t *testing.T) {
	f := &fakeDriver{}
	foreign := &driver.Message{AckID: "f", Topic: "other", Message: message.NewMessage("f", nil), Attempts: 3}
	own := &driver.Message{AckID: "o", Topic: "t", Message: message.NewMessage("o", nil), Recorded: true}
	f.receives = []func() ([]*driver.Message, error){
		func() ([]*driver.Message, error) { return nil, errors.New("connection reset") },
		func() ([]*driver.Message, error) { return []*driver.Message{foreign, own}, nil },
	}
	sub, err := engine.New(f, transports.SubscriberConfig{Group: "g", Consumer: "c", AckTimeout: time.Minute, Concurrency: 2}, engine.Options{ReceiveWait: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := sub.Subscribe(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	m := next(t, ch)
	if m.UUID != "o" || transports.Info(m).Attempt != 1 {
		t.Fatalf("handed out %s attempt %d, want o attempt 1", m.UUID, transports.Info(m).Attempt)
	}
	m.Ack()
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if n := f.pendings.Load(); n < 2 {
		t.Errorf("own pending read %d times, want at start and after the broken read", n)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.nacks) != 1 || f.nacks[0].AckID != "f" || f.nacks[0].Attempts != 3 || f.nacks[0].Delay <= 0 {
		t.Errorf("nacks %+v, want the foreign delivery returned with its 3 attempts after a delay", f.nacks)
	}
	if len(f.acks) != 1 || f.acks[0] != "o" {
		t.Errorf("acks %v, want [o]", f.acks)
	}
}
