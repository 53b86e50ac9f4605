package engine_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/driver"
	"github.com/busline/busline/transports/engine"
	"github.com/busline/busline/transports/memory"
)

func subscribeSlots(t *testing.T, b *memory.Broker, concurrency int) ([]transports.Slot, transports.SlotSubscriber, context.CancelFunc, *memory.Transport) {
	t.Helper()
	tr := memory.New(b)
	t.Cleanup(func() { _ = tr.Close() })
	sub, err := tr.NewSubscriber(transports.SubscriberConfig{Group: "g", Consumer: "c", AckTimeout: time.Minute, Concurrency: concurrency})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	ss, ok := sub.(transports.SlotSubscriber)
	if !ok {
		t.Fatalf("%T is not a transports.SlotSubscriber", sub)
	}
	ctx, cancel := context.WithCancel(context.Background())
	slots, err := ss.SubscribeSlots(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(slots) != concurrency {
		t.Fatalf("%d slots, want Concurrency %d", len(slots), concurrency)
	}
	return slots, ss, cancel, tr
}

func groupOf(t *testing.T, b *memory.Broker) memory.GroupInfo {
	t.Helper()
	gs := b.Groups("t")
	if len(gs) != 1 {
		t.Fatalf("groups %+v, want g", gs)
	}
	return gs[0]
}

// A slot hands out a message, settles its Ack or Nack on Settle (ending
// its context) and reads only what the slots can hand out.
func TestSlotsSettle(t *testing.T) {
	b := memory.NewBroker(0)
	slots, _, _, tr := subscribeSlots(t, b, 2)
	publish(t, tr, 3)
	x, y := slots[0].Next(nil), slots[1].Next(nil)
	if g := groupOf(t, b); g.Pending != 2 || g.Lag != 1 {
		t.Fatalf("pending %d lag %d with two slots out, want 2 and 1: read ahead of the slots", g.Pending, g.Lag)
	}
	for _, m := range []*message.Message{x, y} {
		if info := transports.DeliveryInfoFrom(m.Context()); info == nil || info.Attempt != 1 || m.Context().Err() != nil {
			t.Fatalf("handed out %s with info %+v, context error %v", m.UUID, info, m.Context().Err())
		}
	}
	x.Ack()
	slots[0].Settle()
	if x.Context().Err() == nil {
		t.Error("the context of a settled message is not cancelled")
	}
	if g := groupOf(t, b); g.Pending != 1 {
		t.Fatalf("pending %d after an ack settled inline, want 1", g.Pending)
	}
	transports.Info(y).RetryAfter = 50 * time.Millisecond
	y.Nack()
	slots[1].Settle()
	z := slots[1].Next(nil) // the third entry: y waits for its delay
	if z.UUID == y.UUID {
		t.Fatalf("nacked %s handed out again before its RetryAfter", y.UUID)
	}
	z.Ack()
	again := slots[0].Next(nil)
	if again.UUID != y.UUID || transports.Info(again).Attempt != 2 {
		t.Fatalf("got %s attempt %d, want %s attempt 2", again.UUID, transports.Info(again).Attempt, y.UUID)
	}
	again.Ack()
	slots[0].Settle()
	slots[1].Settle()
	if g := groupOf(t, b); g.Pending != 0 || g.Lag != 0 {
		t.Fatalf("pending %d lag %d after every ack, want 0 and 0", g.Pending, g.Lag)
	}
}

// Once the Subscribe context ends, Next returns nil and what was read
// and not handed out goes back uncounted; a message handed out before can
// still be acked and settled until Close.
func TestSlotsStopAndLateSettle(t *testing.T) {
	b := memory.NewBroker(0)
	slots, ss, cancel, tr := subscribeSlots(t, b, 2)
	publish(t, tr, 3)
	x := slots[0].Next(nil)
	cancel()
	if m := slots[1].Next(nil); m != nil {
		t.Fatalf("Next handed out %s after the Subscribe context ended", m.UUID)
	}
	x.Ack()
	slots[0].Settle() // late, still before Close: counts
	if m := slots[0].Next(nil); m != nil {
		t.Fatalf("Next handed out %s after the Subscribe context ended", m.UUID)
	}
	if err := ss.(interface{ Close() error }).Close(); err != nil {
		t.Fatal(err)
	}
	// x acked; the one read for slot 1 given back (pending, claimable at
	// once, count unchanged); the third never read.
	if g := groupOf(t, b); g.Pending != 1 || g.Lag != 1 {
		t.Fatalf("pending %d lag %d after Close, want 1 and 1: the late ack lost or an entry not given back", g.Pending, g.Lag)
	}
	// The two never handed out come to the next member as first attempts.
	slots2, _, _, _ := subscribeSlots(t, b, 2)
	for i := range 2 {
		m := slots2[i].Next(nil)
		if m.UUID == x.UUID {
			t.Fatalf("acked %s handed out again", x.UUID)
		}
		if a := transports.Info(m).Attempt; a != 1 {
			t.Fatalf("%s attempt %d after a give-back, want 1", m.UUID, a)
		}
	}
}

// Settle after Close does nothing: the message stays pending for this
// member; Close does not wait for a slot whose message is out.
func TestSlotsSettleAfterClose(t *testing.T) {
	b := memory.NewBroker(0)
	slots, ss, _, tr := subscribeSlots(t, b, 1)
	publish(t, tr, 1)
	x := slots[0].Next(nil)
	if err := ss.(interface{ Close() error }).Close(); err != nil {
		t.Fatal(err)
	}
	x.Ack()
	slots[0].Settle()
	if m := slots[0].Next(nil); m != nil {
		t.Fatalf("Next handed out %s after Close", m.UUID)
	}
	if g := groupOf(t, b); g.Pending != 1 {
		t.Fatalf("pending %d, want 1: an ack settled after Close reached the broker", g.Pending)
	}
}

// A message admit refuses goes back uncounted, and Next returns nil.
func TestSlotsAdmitRefused(t *testing.T) {
	b := memory.NewBroker(0)
	slots, ss, _, tr := subscribeSlots(t, b, 1)
	publish(t, tr, 1)
	if m := slots[0].Next(func() bool { return false }); m != nil {
		t.Fatalf("Next returned %s that admit refused", m.UUID)
	}
	if m := slots[0].Next(nil); m != nil {
		t.Fatalf("Next handed out %s after a refusal ended the slot", m.UUID)
	}
	if err := ss.(interface{ Close() error }).Close(); err != nil { // flushes the give-back
		t.Fatal(err)
	}
	slots2, _, _, _ := subscribeSlots(t, b, 1) // the same member: own pending first
	m := slots2[0].Next(nil)
	if a := transports.Info(m).Attempt; a != 1 {
		t.Fatalf("attempt %d after a refused hand-out, want 1", a)
	}
}

// alongDriver reads one scripted entry per Receive: a read with a wait
// (the reader's) blocks until released, one without (a read alongside,
// ConcurrentReceive) returns at once.
type alongDriver struct {
	fakeDriver
	release chan struct{}
	readers atomic.Int32 // reads with a wait in progress
	next    atomic.Int32
}

func (d *alongDriver) Open(context.Context, string, transports.SubscriberConfig) (driver.Subscription, error) {
	return d, nil
}

func (d *alongDriver) Capabilities() driver.Capabilities {
	return driver.Capabilities{ConcurrentReceive: true}
}

func (d *alongDriver) Receive(ctx context.Context, n int, wait time.Duration) ([]*driver.Message, error) {
	if wait > 0 && d.next.Load() > 0 {
		d.readers.Add(1)
		defer d.readers.Add(-1)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-d.release:
			return nil, nil
		}
	}
	id := fmt.Sprint("m", d.next.Add(1))
	return []*driver.Message{{AckID: id, Topic: "t", Message: message.NewMessage(id, nil)}}, nil
}

// On a driver with ConcurrentReceive, a slot freed while another slot
// waits in a read reads for itself at once instead of waiting for it.
func TestSlotsReadAlongside(t *testing.T) {
	d := &alongDriver{release: make(chan struct{})}
	sub, err := engine.New(d, transports.SubscriberConfig{Group: "g", Consumer: "c", AckTimeout: time.Minute, Concurrency: 2}, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	defer close(d.release)
	slots, err := sub.SubscribeSlots(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	first := slots[0].Next(nil) // the reader's first read: m1
	waiting := make(chan *message.Message, 1)
	go func() { waiting <- slots[1].Next(nil) }() // the reader now, waiting in Receive
	deadline := time.Now().Add(10 * time.Second)
	for d.readers.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("slot 1 never waited in a read")
		}
		time.Sleep(time.Millisecond)
	}
	first.Ack()
	got := make(chan *message.Message, 1)
	go func() { got <- slots[0].Next(nil) }()
	select {
	case m := <-got:
		if m == nil || m.UUID != "m2" {
			t.Fatalf("slot 0 got %v, want m2 read alongside", m)
		}
		m.Ack()
		slots[0].Settle()
	case <-time.After(10 * time.Second):
		t.Fatal("slot 0 waited for the other slot's read instead of reading alongside it")
	}
	select {
	case m := <-waiting:
		t.Fatalf("the waiting read returned %v", m)
	default:
	}
}

// stepDriver hands each Receive to the test, which answers it.
type stepDriver struct {
	fakeDriver
	calls chan stepCall
}

type stepCall struct {
	wait  time.Duration
	reply chan []*driver.Message
}

func (d *stepDriver) Open(context.Context, string, transports.SubscriberConfig) (driver.Subscription, error) {
	return d, nil
}

func (d *stepDriver) Capabilities() driver.Capabilities {
	return driver.Capabilities{ConcurrentReceive: true}
}

func (d *stepDriver) Receive(ctx context.Context, n int, wait time.Duration) ([]*driver.Message, error) {
	c := stepCall{wait: wait, reply: make(chan []*driver.Message, 1)}
	select {
	case d.calls <- c:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case msgs := <-c.reply:
		return msgs, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func stepMsg(id string) []*driver.Message {
	return []*driver.Message{{AckID: id, Topic: "t", Message: message.NewMessage(id, nil)}}
}

// A read alongside that finds nothing while the reader finishes (the
// reader then sees no free slot: the read alongside holds its token) must
// not leave the slot waiting for a reader that no longer reads.
func TestSlotsReadAlongsideThenNoReader(t *testing.T) {
	d := &stepDriver{calls: make(chan stepCall)}
	sub, err := engine.New(d, transports.SubscriberConfig{Group: "g", Consumer: "c", AckTimeout: time.Minute, Concurrency: 2}, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	slots, err := sub.SubscribeSlots(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	call := func(wantWait bool) stepCall {
		t.Helper()
		select {
		case c := <-d.calls:
			if (c.wait > 0) != wantWait {
				t.Fatalf("Receive with wait %s, want a wait: %v", c.wait, wantWait)
			}
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("no Receive came")
		}
		return stepCall{}
	}
	// Both slots out, after a read that took both free slots (so no slot
	// was told a reader is free).
	got0 := make(chan *message.Message, 1)
	go func() { got0 <- slots[0].Next(nil) }()
	call(true).reply <- append(stepMsg("m1"), stepMsg("m1b")...)
	m1 := <-got0
	m1b := slots[1].Next(nil)
	m1b.Ack()
	got1 := make(chan *message.Message, 1)
	go func() { got1 <- slots[1].Next(nil) }()
	reader := call(true) // slot 1 reads, waiting
	m1.Ack()
	go func() { got0 <- slots[0].Next(nil) }()
	along := call(false)          // slot 0 reads alongside
	reader.reply <- stepMsg("m2") // the reader finishes: no free slot seen
	if m := <-got1; m == nil || m.UUID != "m2" {
		t.Fatalf("slot 1 got %v, want m2", m)
	}
	along.reply <- nil // nothing alongside
	call(true).reply <- stepMsg("m3")
	select {
	case m := <-got0:
		if m == nil || m.UUID != "m3" {
			t.Fatalf("slot 0 got %v, want m3", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("slot 0 never got m3")
	}
}

// An Ack made before Close counts even when Settle comes only after it
// (Close settles what was acked), as for a message of Subscribe.
func TestSlotsAckBeforeCloseSettledAfter(t *testing.T) {
	b := memory.NewBroker(0)
	slots, ss, _, tr := subscribeSlots(t, b, 1)
	publish(t, tr, 1)
	x := slots[0].Next(nil)
	x.Ack()
	if err := ss.(interface{ Close() error }).Close(); err != nil {
		t.Fatal(err)
	}
	slots[0].Settle() // too late to matter: Close settled it
	if g := groupOf(t, b); g.Pending != 0 {
		t.Fatalf("pending %d, want 0: an Ack made before Close was lost", g.Pending)
	}
}
