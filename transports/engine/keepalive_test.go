package engine_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/driver"
	"github.com/busline/busline/transports/engine"
)

// waitDriver is a fakeDriver without a pending list whose broker
// redelivers what is not kept alive within its AckWait (as JetStream
// does); it records the keep-alives.
type waitDriver struct {
	*fakeDriver
	ackWait time.Duration
	kmu     sync.Mutex
	kept    [][]driver.AckID
}

func (w *waitDriver) Open(context.Context, string, transports.SubscriberConfig) (driver.Subscription, error) {
	return w, nil
}
func (w *waitDriver) Capabilities() driver.Capabilities {
	return driver.Capabilities{AckWait: w.ackWait}
}
func (w *waitDriver) KeepAlive(_ context.Context, ids []driver.AckID) error {
	w.kmu.Lock()
	defer w.kmu.Unlock()
	w.kept = append(w.kept, slices.Clone(ids))
	return nil
}

// keptAlive reports whether a keep-alive named id.
func (w *waitDriver) keptAlive(id driver.AckID) bool {
	w.kmu.Lock()
	defer w.kmu.Unlock()
	for _, ids := range w.kept {
		if slices.Contains(ids, id) {
			return true
		}
	}
	return false
}

// On a broker without a pending list that has an AckWait of its own, the
// engine keeps what it holds alive within that AckWait, however long
// the listener's AckTimeout (a third of which would be 20s here).
func TestKeepAliveWithinDriverAckWait(t *testing.T) {
	w := &waitDriver{fakeDriver: &fakeDriver{}, ackWait: 30 * time.Millisecond}
	w.receives = []func() ([]*driver.Message, error){
		func() ([]*driver.Message, error) {
			return []*driver.Message{{AckID: "a", Topic: "t", Message: message.NewMessage("a", nil), Recorded: true}}, nil
		},
	}
	sub, err := engine.New(w, transports.SubscriberConfig{Group: "g", Consumer: "c", AckTimeout: time.Minute, Concurrency: 1}, engine.Options{ReceiveWait: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ch, err := sub.Subscribe(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	m := next(t, ch)
	for deadline := time.Now().Add(10 * time.Second); !w.keptAlive("a"); {
		if time.Now().After(deadline) {
			t.Fatal("a handed-out message was not kept alive within 10s, on a driver with an AckWait of 30ms")
		}
		time.Sleep(time.Millisecond)
	}
	m.Ack()
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.acks) != 1 || w.acks[0] != "a" {
		t.Errorf("acks %v, want [a]", w.acks)
	}
}
