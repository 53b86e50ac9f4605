package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/driver"
	"github.com/busline/busline/transports/engine"
)

// pushDriver is a fakeDriver without a pending list (a broker that pushes
// deliveries, as RabbitMQ does) that reports when it is closed.
type pushDriver struct {
	*fakeDriver
	once   sync.Once
	closed chan struct{}
}

func (p *pushDriver) Open(context.Context, string, transports.SubscriberConfig) (driver.Subscription, error) {
	return p, nil
}
func (p *pushDriver) Capabilities() driver.Capabilities { return driver.Capabilities{} }
func (p *pushDriver) Close() error {
	p.once.Do(func() { close(p.closed) })
	return nil
}

// Once the Subscribe context ends, a push broker's subscription closes as
// soon as the messages handed out are settled (their settlements flushed
// first), not at Subscriber.Close: the broker stops pushing deliveries to
// a consumer nobody reads.
func TestPushSubscriptionClosesWhenDrained(t *testing.T) {
	p := &pushDriver{fakeDriver: &fakeDriver{}, closed: make(chan struct{})}
	p.receives = []func() ([]*driver.Message, error){
		func() ([]*driver.Message, error) {
			return []*driver.Message{{AckID: "a", Topic: "t", Message: message.NewMessage("a", nil)}}, nil
		},
	}
	sub, err := engine.New(p, transports.SubscriberConfig{Group: "g", Consumer: "c", AckTimeout: time.Minute, Concurrency: 1}, engine.Options{ReceiveWait: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := sub.Subscribe(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	m := next(t, ch)
	cancel()
	for range ch { // closes once reading stopped
	}
	select {
	case <-p.closed:
		t.Fatal("driver subscription closed while a handed-out message was not settled")
	default:
	}
	m.Nack()
	select {
	case <-p.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("driver subscription not closed within 5s of the last settlement after the context ended")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.nacks) != 1 || p.nacks[0].AckID != "a" {
		t.Fatalf("nacks %+v, want the nack of a flushed before the close", p.nacks)
	}
}
