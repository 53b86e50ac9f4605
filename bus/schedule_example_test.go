package bus_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/busline/busline/bus"
	_ "github.com/busline/busline/transports/memory"
)

type TrialStarted struct {
	Account string `json:"account"`
}

var TrialsStarted = bus.NewEvent[TrialStarted]("billing", "trial_started")

// Fire an event for later with WithDelay (or WithDeliverAt): every
// listener gets it once it is due; CancelScheduled withdraws one that is
// not due yet.
func ExampleWithDelay() {
	ctx := context.Background()
	b, err := bus.New(bus.Config{Service: "reminders", Transport: "memory://"})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	got := make(chan string, 2)
	err = bus.Listen(b, TrialsStarted, "send-reminder", func(ctx context.Context, d bus.Delivery[TrialStarted]) error {
		got <- d.Payload.Account
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		log.Fatal(err)
	}
	fired := time.Now()
	if _, err := bus.Fire(ctx, b, TrialsStarted, TrialStarted{Account: "acme"}, bus.WithDelay(50*time.Millisecond)); err != nil {
		log.Fatal(err)
	}
	id, err := bus.Fire(ctx, b, TrialsStarted, TrialStarted{Account: "globex"}, bus.WithDeliverAt(time.Now().Add(time.Hour)))
	if err != nil {
		log.Fatal(err)
	}
	if err := bus.CancelScheduled(ctx, b, id); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-got, "reminded, not early:", time.Since(fired) >= 50*time.Millisecond)

	_, err = bus.Fire(ctx, b, TrialsStarted, TrialStarted{}, bus.WithDelay(31*24*time.Hour))
	fmt.Println(errors.Is(err, bus.ErrDelayTooLong))
	// Output:
	// acme reminded, not early: true
	// true
}
