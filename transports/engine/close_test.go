package engine_test

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/driver"
	"github.com/busline/busline/transports/engine"
)

// slowCloseDriver is a fakeDriver whose subscription Close blocks until
// release is closed, as a driver returning buffered deliveries does.
type slowCloseDriver struct {
	*fakeDriver
	entered chan struct{}
	release chan struct{}
}

func (d *slowCloseDriver) Open(context.Context, string, transports.SubscriberConfig) (driver.Subscription, error) {
	return d, nil
}

func (d *slowCloseDriver) Close() error {
	close(d.entered)
	<-d.release
	return nil
}

// A second Close while the first is on its way returns only once the first
// finished: whoever returns from Close may close what the subscriber
// stands on (Watermill's suite closes a subscriber from two goroutines,
// then its connection).
func TestCloseWaitsForCloseOnItsWay(t *testing.T) {
	d := &slowCloseDriver{fakeDriver: &fakeDriver{}, entered: make(chan struct{}), release: make(chan struct{})}
	sub, err := engine.New(d, transports.SubscriberConfig{Group: "g", Consumer: "c", AckTimeout: time.Minute, Concurrency: 1}, engine.Options{ReceiveWait: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Subscribe(context.Background(), "t"); err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() { first <- sub.Close() }()
	<-d.entered
	var released atomic.Bool
	second := make(chan bool, 1)
	calling := make(chan struct{})
	go func() {
		close(calling)
		_ = sub.Close()
		second <- released.Load()
	}()
	<-calling
	runtime.Gosched()
	released.Store(true)
	close(d.release)
	if err := <-first; err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if !<-second {
		t.Fatal("the second Close returned before the first had closed the driver's subscription")
	}
}
