// Package alerts shows how to test a Busline handler with bustest: the
// handler under test sends a price alert when a competitor undercuts us.
//
//	go test ./examples/testing
package alerts

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/busline/busline/bus"
)

// PriceChanged is the payload of competitor_prices.changed.
type PriceChanged struct {
	Product    string  `json:"product"`
	Competitor string  `json:"competitor"`
	Price      float64 `json:"price"`
}

// PricesChanged is fired when a competitor changes a price.
var PricesChanged = bus.NewEvent[PriceChanged]("competitor_prices", "changed")

// Notifier sends alerts (email, chat, ...).
type Notifier interface {
	Notify(ctx context.Context, text string) error
}

// Alerts sends an alert when a competitor sells below our price.
type Alerts struct {
	OurPrices map[string]float64
	Notifier  Notifier
}

// Handle is the listener "send-price-alerts". An unknown product is a
// permanent error: retrying will not help, so the event is dead-lettered.
func (a *Alerts) Handle(ctx context.Context, d bus.Delivery[PriceChanged]) error {
	ours, ok := a.OurPrices[d.Payload.Product]
	if !ok {
		return bus.Permanent(fmt.Errorf("unknown product %q", d.Payload.Product))
	}
	if d.Payload.Price >= ours {
		return nil
	}
	return a.Notifier.Notify(ctx, fmt.Sprintf("%s sells %s for %.2f (we ask %.2f)",
		d.Payload.Competitor, d.Payload.Product, d.Payload.Price, ours))
}

// FlakyNotifier fails the first Failures calls, then records the texts.
type FlakyNotifier struct {
	mu       sync.Mutex
	Failures int
	Sent     []string
}

// Notify implements Notifier.
func (n *FlakyNotifier) Notify(_ context.Context, text string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.Failures > 0 {
		n.Failures--
		return errors.New("chat service unavailable")
	}
	n.Sent = append(n.Sent, text)
	return nil
}
