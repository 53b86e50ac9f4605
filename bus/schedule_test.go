package bus_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/memory"
)

// plainTransport hides every capability of the memory transport but the
// Transport interface itself: a driver that cannot schedule.
type plainTransport struct{ transports.Transport }

func init() {
	transports.Register("noschedule-test", func(context.Context, *url.URL, transports.OpenOptions) (transports.Transport, error) {
		return plainTransport{memory.New(memory.NewBroker(0))}, nil
	})
}

func TestDelayUnsupported(t *testing.T) {
	b, err := bus.New(bus.Config{Service: "svc", Transport: "noschedule-test://"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if _, err := bus.Fire(ctx, b, priceChanged, price{}, bus.WithDelay(time.Minute)); !errors.Is(err, bus.ErrUnsupported) {
		t.Fatalf("delayed Fire without a Scheduler: %v, want ErrUnsupported", err)
	}
	if err := bus.CancelScheduled(ctx, b, "x"); !errors.Is(err, bus.ErrUnsupported) {
		t.Fatalf("CancelScheduled without a Scheduler: %v, want ErrUnsupported", err)
	}
	// Not delayed, or due already: a plain Fire, which every transport does.
	for _, opt := range []bus.FireOption{bus.WithDelay(0), bus.WithDelay(-time.Second), bus.WithDeliverAt(time.Now().Add(-time.Minute))} {
		if _, err := bus.Fire(ctx, b, priceChanged, price{}, opt); err != nil {
			t.Fatalf("Fire due now: %v", err)
		}
	}
}

func TestDelayLimit(t *testing.T) {
	b, err := bus.New(bus.Config{Service: "svc", Transport: "memory://"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if _, err := bus.Fire(ctx, b, priceChanged, price{}, bus.WithDelay(bus.MaxDelay+time.Second)); !errors.Is(err, bus.ErrDelayTooLong) {
		t.Fatalf("Fire beyond MaxDelay: %v, want ErrDelayTooLong", err)
	}
	// The last option wins: a later WithDeliverAt in the past fires now.
	id, err := bus.Fire(ctx, b, priceChanged, price{}, bus.WithDelay(time.Hour), bus.WithDeliverAt(time.Now().Add(-time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.CancelScheduled(ctx, b, id); !errors.Is(err, bus.ErrNotScheduled) {
		t.Fatalf("cancel of an event fired at once: %v, want ErrNotScheduled", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bus.CancelScheduled(ctx, b, id); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("cancel on a closed bus: %v, want ErrClosed", err)
	}
}

// FireTo hands the message to another path, which would deliver it at
// once: a delay is refused rather than delivered early.
func TestDelayFireTo(t *testing.T) {
	b, err := bus.New(bus.Config{Service: "svc", Transport: "memory://"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	called := false
	publish := func(context.Context, string, *message.Message) error { called = true; return nil }
	_, err = bus.FireTo(context.Background(), b, priceChanged, price{}, publish, bus.WithDelay(time.Minute))
	if !errors.Is(err, bus.ErrUnsupported) || called {
		t.Fatalf("FireTo with a delay: %v (publish called: %v), want ErrUnsupported and no publish", err, called)
	}
}
