package memory

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
)

// A slot woken for a new entry that stops instead of taking it passes the
// wake on: another member of the group gets the entry without waiting for
// the next append.
func TestWakePassedOnByStoppingSlot(t *testing.T) {
	tr := New(NewBroker(0))
	defer tr.Close()
	cfg := func(consumer string) transports.SubscriberConfig {
		return transports.SubscriberConfig{Group: "g", Consumer: consumer, AckTimeout: time.Minute, Concurrency: 1}
	}
	subB, err := tr.NewSubscriber(cfg("b"))
	if err != nil {
		t.Fatal(err)
	}
	outB, err := subB.Subscribe(context.Background(), "topic")
	if err != nil {
		t.Fatal(err)
	}
	b := tr.broker
	waiters := func() int {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.streams["topic"].groups["g"].waiters)
	}
	waitFor(t, func() bool { return waiters() == 1 })
	subA, err := tr.NewSubscriber(cfg("a"))
	if err != nil {
		t.Fatal(err)
	}
	ctxA, stopA := context.WithCancel(context.Background())
	if _, err := subA.Subscribe(ctxA, "topic"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return waiters() == 2 }) // a's slot waits last: it is woken first

	// Stop a and append under one lock, as a racing append would: a's
	// slot is woken for the entry but finds reading stopped.
	b.mu.Lock()
	stopA()
	s := b.streams["topic"]
	s.push(store(message.NewMessage("e1", []byte("x"))), b.now())
	s.groups["g"].wakeLocked(1)
	b.mu.Unlock()

	select {
	case msg := <-outB:
		if msg.UUID != "e1" {
			t.Fatalf("b got %s", msg.UUID)
		}
		msg.Ack()
	case <-time.After(10 * time.Second):
		t.Fatal("the entry was not delivered to the other member: the wake was lost")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(time.Millisecond)
	}
}
