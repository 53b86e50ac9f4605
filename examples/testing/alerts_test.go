package alerts

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/bus/bustest"
)

func newAlerts(failures int) (*Alerts, *FlakyNotifier) {
	n := &FlakyNotifier{Failures: failures}
	return &Alerts{OurPrices: map[string]float64{"grinder": 95}, Notifier: n}, n
}

func TestAlertSentOnceWhenUndercut(t *testing.T) {
	b := bustest.New(t, bus.Config{Service: "price-monitor"})
	alerts, notifier := newAlerts(0)
	if err := bus.Listen(b.Bus, PricesChanged, "send-price-alerts", alerts.Handle); err != nil {
		t.Fatal(err)
	}
	b.Start(t)
	ctx := context.Background()
	if _, err := bus.Fire(ctx, b.Bus, PricesChanged, PriceChanged{"grinder", "coffee-corp", 89.99}); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.Fire(ctx, b.Bus, PricesChanged, PriceChanged{"grinder", "bean-barn", 99}); err != nil {
		t.Fatal(err)
	}
	b.MustWaitIdle(t)

	b.AssertFired(t, PricesChanged.Name(), 2)
	b.AssertSucceeded(t, b.Group("send-price-alerts"), 2)
	if len(notifier.Sent) != 1 || !strings.Contains(notifier.Sent[0], "coffee-corp") {
		t.Errorf("alerts sent = %q, want one about coffee-corp", notifier.Sent)
	}
}

func TestAlertRetriedWhenNotifierFails(t *testing.T) {
	b := bustest.New(t, bus.Config{Service: "price-monitor"})
	alerts, notifier := newAlerts(2) // fails twice, then works
	err := bus.Listen(b.Bus, PricesChanged, "send-price-alerts", alerts.Handle,
		bus.WithRetry(bus.RetryPolicy{Tries: 3, InitialInterval: time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	b.Start(t)
	if _, err := bus.Fire(context.Background(), b.Bus, PricesChanged, PriceChanged{"grinder", "coffee-corp", 80}); err != nil {
		t.Fatal(err)
	}
	b.MustWaitIdle(t)
	calls := b.Handled("price-monitor-send-price-alerts")
	if len(calls) != 3 || calls[0].Err == nil || calls[2].Err != nil {
		t.Errorf("handler calls = %+v, want two failures then a success", calls)
	}
	if len(notifier.Sent) != 1 {
		t.Errorf("alerts sent = %d, want 1", len(notifier.Sent))
	}
}

func TestUnknownProductIsDeadLettered(t *testing.T) {
	b := bustest.New(t, bus.Config{Service: "price-monitor"})
	alerts, _ := newAlerts(0)
	if err := bus.Listen(b.Bus, PricesChanged, "send-price-alerts", alerts.Handle); err != nil {
		t.Fatal(err)
	}
	b.Start(t)
	if _, err := bus.Fire(context.Background(), b.Bus, PricesChanged, PriceChanged{"kettle", "coffee-corp", 20}); err != nil {
		t.Fatal(err)
	}
	b.MustWaitIdle(t)
	b.AssertDeadLettered(t, "price-monitor-send-price-alerts", 1)
	if dl := b.DeadLetters("price-monitor-send-price-alerts"); len(dl) == 1 && !strings.Contains(dl[0].Reason, "unknown product") {
		t.Errorf("dead-letter reason = %q", dl[0].Reason)
	}
}
