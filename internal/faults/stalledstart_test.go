package faults

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/busline/busline/bus"
)

// TestStopDuringAStalledStart: the broker stops answering (still
// connected: a proxy holds every reply) while a bus starts. Cancelling
// Run's context, or calling Close, ends the start and returns within
// CloseBudget and a few seconds, as Close on a stalled broker does (an
// error from a close the broker did not answer is Close's to report); Run
// then returns what Close returns, not the start's error. Before, Run
// ignored its context until the start gave up, and Close waited for it:
// 19 s on Redis and NATS, 2 min 30 s on RabbitMQ (whose record
// operations' connections ignored the caller's context).
func TestStopDuringAStalledStart(t *testing.T) {
	limit := bus.CloseBudget + 3*time.Second
	for _, kind := range []string{"redis", "amqp", "nats"} {
		for _, stop := range []string{"cancel", "close"} {
			t.Run(kind+"/"+stop, func(t *testing.T) {
				tg := newTarget(t, kind)
				p, raw := Proxied(t, tg.url)
				b := newBus(t, bus.Config{Service: tg.service, Transport: raw, Process: "p1", ShutdownTimeout: time.Second})
				if err := bus.Listen(b, ticked, listenerName, func(context.Context, bus.Delivery[tick]) error { return nil }); err != nil {
					t.Fatal(err)
				}
				p.Hold()
				t.Cleanup(p.Release)
				heldBefore := p.Withheld() // a heartbeat, say
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				started := make(chan error, 1)
				go func() {
					if stop == "cancel" {
						started <- b.Run(ctx)
					} else {
						started <- b.Start(context.Background())
					}
				}()
				// The start waits on the broker: a reply is held.
				waitFor(t, 20*time.Second, "the start to wait on the broker", func() bool {
					select {
					case err := <-started:
						t.Fatalf("the start ended before the broker answered: %v", err)
					default:
					}
					return p.Withheld() > heldBefore
				})
				begin := time.Now()
				var err error
				if stop == "cancel" {
					cancel()
					err = <-started
				} else {
					err = b.Close()
					if serr := <-started; !errors.Is(serr, bus.ErrClosed) {
						t.Errorf("Start cut short by Close = %v, want bus.ErrClosed", serr)
					}
				}
				took := time.Since(begin)
				t.Logf("%s during a stalled start on %s: %s, %v", stop, kind, took.Round(time.Millisecond), err)
				if took > limit {
					t.Errorf("%s during a stalled start took %s, want at most %s", stop, took.Round(time.Millisecond), limit)
				}
				// Close is idempotent: a second call returns what the first did.
				if cerr := b.Close(); err != cerr {
					t.Errorf("%s during a stalled start returned %v; Close returned %v: want Close's result, not the start's error", stop, err, cerr)
				}
			})
		}
	}
}
