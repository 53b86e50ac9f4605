// Command scheduling fires events for later: a reminder due a moment after
// a trial starts (WithDelay), another at a given time (WithDeliverAt), and
// one that is cancelled before it is due (CancelScheduled).
//
//	go run ./examples/scheduling
//
// It runs on the in-memory transport with no setup; set BUSLINE_TRANSPORT
// (for example redis://127.0.0.1:6379/0) to run it on a broker. It exits
// once both reminders arrived, and fails if one came early or the
// cancelled one came at all.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/busline/busline/bus"
	_ "github.com/busline/busline/transports/all"
)

// TrialStarted is the payload of billing.trial_reminder_due.
type TrialStarted struct {
	Account string `json:"account"`
}

// ReminderDue is fired when a trial starts, for delivery later.
var ReminderDue = bus.NewEvent[TrialStarted]("billing", "trial_reminder_due")

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	transport := os.Getenv("BUSLINE_TRANSPORT")
	if transport == "" {
		transport = "memory://"
	}
	b, err := bus.New(bus.Config{
		Service: "trials", Transport: transport,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	defer b.Close()

	type arrival struct {
		account string
		due     string
		at      time.Time
	}
	arrived := make(chan arrival, 8)
	err = bus.Listen(b, ReminderDue, "send-reminder", func(ctx context.Context, d bus.Delivery[TrialStarted]) error {
		arrived <- arrival{d.Payload.Account, d.Metadata[bus.MetaDeliverAt], time.Now()}
		return nil
	})
	if err != nil {
		return err
	}
	if err := b.Start(ctx); err != nil {
		return err
	}

	start := time.Now()
	if _, err := bus.Fire(ctx, b, ReminderDue, TrialStarted{Account: "acme"}, bus.WithDelay(300*time.Millisecond)); err != nil {
		return err
	}
	if _, err := bus.Fire(ctx, b, ReminderDue, TrialStarted{Account: "initech"}, bus.WithDeliverAt(start.Add(600*time.Millisecond))); err != nil {
		return err
	}
	dropped, err := bus.Fire(ctx, b, ReminderDue, TrialStarted{Account: "globex"}, bus.WithDelay(400*time.Millisecond))
	if err != nil {
		return err
	}
	want := 2
	switch err := bus.CancelScheduled(ctx, b, dropped); {
	case errors.Is(err, bus.ErrUnsupported):
		fmt.Println("this transport cannot cancel a scheduled event:", err)
		want = 3
	case err != nil:
		return fmt.Errorf("cancel the globex reminder: %w", err)
	default:
		fmt.Println("fired 3 reminders for later, cancelled 1")
	}

	for range want {
		select {
		case a := <-arrived:
			due, _ := time.Parse(time.RFC3339Nano, a.due)
			if a.at.Before(due) {
				return fmt.Errorf("%s arrived %s early", a.account, due.Sub(a.at))
			}
			if a.account == "globex" && want == 2 {
				return fmt.Errorf("the cancelled reminder arrived")
			}
			fmt.Printf("reminder for %s after %s (due %s)\n", a.account, a.at.Sub(start).Round(10*time.Millisecond), due.Sub(start).Round(10*time.Millisecond))
		case <-ctx.Done():
			return fmt.Errorf("waiting for the reminders: %w", ctx.Err())
		}
	}
	return nil
}
