package engine_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/driver"
	"github.com/busline/busline/transports/engine"
)

// windowDriver is a driver with a prefetch window of 8 and a linger long
// enough never to end in a test; it keeps each Ack call.
type windowDriver struct {
	fakeDriver
	calls chan []driver.AckID
}

func (d *windowDriver) Open(context.Context, string, transports.SubscriberConfig) (driver.Subscription, error) {
	return d, nil
}

func (d *windowDriver) Capabilities() driver.Capabilities {
	return driver.Capabilities{AckLinger: time.Hour, AckWindow: 8}
}

func (d *windowDriver) Ack(_ context.Context, ids []driver.AckID) error {
	d.calls <- slices.Clone(ids)
	return nil
}

// With a driver's window, acks are held until half the window waits,
// even while no other message is in a handler (concurrency 1: each ack
// leaves none), and sent in one call; close sends what is left.
func TestAcksHeldUntilHalfTheWindow(t *testing.T) {
	d := &windowDriver{calls: make(chan []driver.AckID, 16)}
	for i := range 5 {
		m := &driver.Message{AckID: fmt.Sprint(i), Topic: "t", Message: message.NewMessage(fmt.Sprint(i), nil), Recorded: true}
		d.receives = append(d.receives, func() ([]*driver.Message, error) { return []*driver.Message{m}, nil })
	}
	sub, err := engine.New(d, transports.SubscriberConfig{Group: "g", Consumer: "c", AckTimeout: time.Minute, Concurrency: 1}, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := sub.Subscribe(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		next(t, ch).Ack()
	}
	var first []driver.AckID
	select {
	case first = <-d.calls:
	case <-time.After(10 * time.Second):
		t.Fatal("no ack call after half the window was settled")
	}
	// The fifth ack may join the batch before the settler takes it.
	if len(first) < 4 {
		t.Fatalf("first ack call %v, want at least [0 1 2 3]", first)
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	close(d.calls)
	all := first
	for ids := range d.calls {
		all = append(all, ids...)
	}
	if !slices.Equal(all, []driver.AckID{"0", "1", "2", "3", "4"}) {
		t.Fatalf("acks sent %v, want [0 1 2 3 4]", all)
	}
}
