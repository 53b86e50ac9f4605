package amqp

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/transports"
)

// A broker that stays connected but never answers: each Fire fails with
// ErrNotConfirmed and the deadline (the pool's confirm timeout, or the
// caller's own), instead of hanging, whether its publish went out and waits
// for a confirm or the sender waits for the broker to open a channel; and
// publishes flow again afterwards.
func TestConfirmTimeout(t *testing.T) {
	for _, tc := range []struct {
		name string
		warm int // Fires before the broker stalls: 8 opens every channel of the pool (4, used in turn)
	}{
		{"published, no confirm", 8},
		{"channel to open", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startProxy(t)
			// A long heartbeat, so that the connection outlives the stall:
			// the Fires must end by their deadline, not by a lost connection.
			raw := testURL(t, p.url(t), "confirm_timeout=1s&heartbeat=60")
			b := newTestBus(t, raw, "svc", "p1")
			startBus(t, b)
			for i := range tc.warm {
				fireItem(t, b, -i)
			}

			p.Hold()
			defer p.Release()
			const n = 4
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					ctx := context.Background()
					if i == 0 { // a deadline of the caller's own, shorter than the pool's
						var cancel context.CancelFunc
						ctx, cancel = context.WithTimeout(ctx, 200*time.Millisecond)
						defer cancel()
					}
					_, errs[i] = bus.Fire(ctx, b, itemEvent, item{N: i + 1})
				})
			}
			wg.Wait()
			for i, err := range errs {
				if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrNotConnected) {
					t.Errorf("Fire %d while the broker does not answer = %v, want context.DeadlineExceeded", i, err)
				}
			}

			p.Release()
			fireItem(t, b, 10) // the pool is not stuck behind the publishes that timed out
		})
	}
}

// neverConfirmed is a publish whose confirm never comes.
func neverConfirmed() []*amqp091.DeferredConfirmation {
	return []*amqp091.DeferredConfirmation{{}}
}

// The sender answers the oldest requests whose wait ended and stops at
// the first one still waiting; at close, it answers every one.
func TestConfirmWaitAnswersInOrder(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	now := time.Now()
	req := func(ctx context.Context, deadline time.Time) *confirmReq {
		return &confirmReq{ctx: ctx, deadline: deadline, exchange: "x", key: "k", dcs: neverConfirmed(), done: make(chan struct{})}
	}
	expired := req(context.Background(), now.Add(-time.Second))
	gone := req(cancelled, now.Add(time.Hour))
	waiting := req(context.Background(), now.Add(time.Hour))
	after := req(context.Background(), now.Add(-time.Second)) // behind one still waiting
	w := confirmWait{queue: []*confirmReq{expired, gone, waiting, after}}

	w.answer(false)
	if !isDone(expired.done) || !errors.Is(expired.err, ErrNotConfirmed) || !errors.Is(expired.err, context.DeadlineExceeded) {
		t.Errorf("expired request: answered %v, err %v; want ErrNotConfirmed and DeadlineExceeded", isDone(expired.done), expired.err)
	}
	if !isDone(gone.done) || !errors.Is(gone.err, context.Canceled) {
		t.Errorf("request of a cancelled context: answered %v, err %v; want context.Canceled", isDone(gone.done), gone.err)
	}
	if isDone(waiting.done) || isDone(after.done) || len(w.queue) != 2 || w.queue[0] != waiting {
		t.Fatalf("requests from the first still waiting on were answered (queue %d long)", len(w.queue))
	}

	w.answer(true)
	for _, r := range []*confirmReq{waiting, after} {
		if !isDone(r.done) || !errors.Is(r.err, ErrNotConfirmed) || !errors.Is(r.err, transports.ErrClosed) {
			t.Errorf("request at close: answered %v, err %v; want ErrNotConfirmed and ErrClosed", isDone(r.done), r.err)
		}
	}
	if len(w.queue) != 0 {
		t.Errorf("%d requests left after the final answer", len(w.queue))
	}
}
