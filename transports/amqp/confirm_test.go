package amqp

import (
	"context"
	"errors"
	"fmt"
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
			// Fire 0 has a deadline of its own, shorter than the pool's;
			// fire 1 one far longer, cancelled once the others returned;
			// the others have none.
			const n = 5
			errs := make([]error, n)
			took := make([]time.Duration, n)
			long, cancelLong := context.WithTimeout(context.Background(), time.Hour)
			defer cancelLong()
			var wg, others sync.WaitGroup
			for i := range n {
				if i != 1 {
					others.Add(1)
				}
				wg.Go(func() {
					ctx := context.Background()
					switch i {
					case 0:
						var cancel context.CancelFunc
						ctx, cancel = context.WithTimeout(ctx, 200*time.Millisecond)
						defer cancel()
					case 1:
						ctx = long
					default:
					}
					start := time.Now()
					_, errs[i] = bus.Fire(ctx, b, itemEvent, item{N: i + 1})
					took[i] = time.Since(start)
					if i != 1 {
						others.Done()
					}
				})
			}
			others.Wait()
			cancelLong()
			wg.Wait()
			for i, err := range errs {
				want := context.DeadlineExceeded
				if i == 1 {
					want = context.Canceled
				}
				if !errors.Is(err, ErrNotConfirmed) || !errors.Is(err, want) || errors.Is(err, ErrNotConnected) {
					t.Errorf("Fire %d while the broker does not answer = %v, want ErrNotConfirmed and %v", i, err, want)
				}
				// The connection would be declared dead after 90 s of
				// silence (heartbeat 60); the confirm timeout is 1 s.
				if i != 1 && took[i] > 20*time.Second {
					t.Errorf("Fire %d returned after %s, not by its deadline", i, took[i])
				}
			}

			p.Release()
			fireItem(t, b, 10) // the pool is not stuck behind the publishes that timed out
		})
	}
}

// Closing the transport while many publishes wait for confirms answers
// every one of them: confirmed, or failed with a reason.
func TestCloseAnswersPublishesInFlight(t *testing.T) {
	b, tr := firedBus(t, testURL(t, "", ""))
	const firers = 32
	var fired sync.WaitGroup
	var wg sync.WaitGroup
	errs := make(chan error, firers)
	fired.Add(firers)
	for w := range firers {
		wg.Go(func() {
			first := true
			for i := 0; ; i++ {
				_, err := bus.Fire(context.Background(), b, itemEvent, item{N: w*1000 + i})
				if first {
					first = false
					fired.Done()
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	fired.Wait() // every firer has had a publish answered, and is publishing again
	if err := tr.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("publishes in flight at Close were not answered")
	}
	close(errs)
	for err := range errs {
		if !errors.Is(err, transports.ErrClosed) && !errors.Is(err, ErrNotConfirmed) && !errors.Is(err, ErrNotConnected) {
			t.Errorf("Fire at Close = %v, want ErrClosed, ErrNotConfirmed or ErrNotConnected", err)
		}
	}
}

// A publish the broker refuses by closing its channel (an exchange that
// does not exist) fails with ErrNotConfirmed and the broker's reason, even
// while other publishes make the pool open the channel again at once; and
// those publishes go through.
func TestPublishRefusedByTheBroker(t *testing.T) {
	b, tr := firedBus(t, testURL(t, "", "channel_pool_size=1"))

	stop := make(chan struct{})
	var firers sync.WaitGroup
	for w := range 8 {
		firers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// Some fail: they shared the channel the broker closed.
				_, _ = bus.Fire(context.Background(), b, itemEvent, item{N: w*100000 + i})
			}
		})
	}
	lost := 0
	for range 50 {
		err := tr.pool.publish(context.Background(), "busline-no-such-exchange", "k", amqp091.Publishing{Body: []byte("{}")})
		var amqpErr *amqp091.Error
		if !errors.Is(err, ErrNotConfirmed) {
			t.Fatalf("publish to a missing exchange = %v, want ErrNotConfirmed", err)
		}
		if !errors.As(err, &amqpErr) || amqpErr.Code != amqp091.NotFound {
			lost++
		}
	}
	close(stop)
	firers.Wait()
	if lost > 0 {
		t.Errorf("%d of 50 refused publishes lost the broker's reason (404)", lost)
	}
	fireItem(t, b, 1)
}

// Close returns within its budget while the broker stopped answering: the
// listener's cancel gets no reply, the sender is stuck waiting for a
// channel to open. It does not wait for the connections to be declared
// dead (90 s of silence here, heartbeat 60).
func TestCloseWhileBrokerStalls(t *testing.T) {
	p := startProxy(t)
	raw := testURL(t, p.url(t), "confirm_timeout=1s&heartbeat=60")
	b := newTestBus(t, raw, "svc", "p1")
	got := make(chan struct{}, 1)
	_ = bus.Listen(b, itemEvent, "work", func(context.Context, bus.Delivery[item]) error {
		select {
		case got <- struct{}{}:
		default:
		}
		return nil
	})
	startBus(t, b)
	tr := b.Transport().(*Transport)
	fireItem(t, b, 0) // one channel of the pool open; the next publish opens another
	<-got

	p.Hold()
	defer p.Release()
	if _, err := bus.Fire(context.Background(), b, itemEvent, item{N: 1}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Fire while the broker does not answer = %v, want context.DeadlineExceeded", err)
	}
	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- tr.Close() }()
	select {
	case err := <-closed:
		if !errors.Is(err, ErrNotConnected) {
			t.Errorf("Close while the broker stalls = %v, want ErrNotConnected (the connections dropped)", err)
		}
		if took := time.Since(start); took > closeBudget+10*time.Second {
			t.Errorf("Close returned after %s, want about %s", took, closeBudget)
		}
	case <-time.After(closeBudget + 60*time.Second):
		t.Fatal("Close did not return while the broker stalled")
	}
}

// Close returns the deliveries a listener's client holds unread (a large
// prefetch) to the queue: each event once, none lost, none duplicated,
// and within Close's budget.
func TestCloseReturnsUnreadDeliveriesOnce(t *testing.T) {
	const n = 5000
	raw := testURL(t, "", fmt.Sprintf("prefetch=%d", n))
	o := optionsOf(t, raw)
	b := newTestBus(t, raw, "svc", "p1")
	release := make(chan struct{})
	defer close(release)
	_ = bus.Listen(b, itemEvent, "held", func(ctx context.Context, _ bus.Delivery[item]) error {
		select { // the handler holds its delivery; the rest wait in the client
		case <-release:
		case <-ctx.Done():
		}
		return ctx.Err()
	}, bus.WithConcurrency(1))
	startBus(t, b)
	payloads := make([]item, 0, bus.MaxBatchCall)
	var ids []string
	for len(ids) < n {
		payloads = payloads[:0]
		for range min(bus.MaxBatchCall, n-len(ids)) {
			payloads = append(payloads, item{N: len(ids) + len(payloads)})
		}
		got, err := bus.FireBatch(context.Background(), b, itemEvent, payloads)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got...)
	}
	queue := o.QueuePrefix + "svc-held"
	eventually(t, 30*time.Second, "every event delivered to the listener's client", func() bool { return queueLen(t, queue) == 0 })

	start := time.Now()
	if err := b.Transport().Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	t.Logf("Close returned %d unread deliveries in %s", n, time.Since(start).Round(time.Millisecond))
	eventually(t, 30*time.Second, "every event back in the queue", func() bool { return queueLen(t, queue) >= n })
	ch := rawChannel(t)
	seen := map[string]int{}
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		seen[headerString(d.Headers["_watermill_message_uuid"])]++
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("event %s is %d times in the queue after Close, want once", id, seen[id])
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct events in the queue, want %d", len(seen), n)
	}
}

// firedBus returns a started bus on raw, and its transport, once it fired
// one event: the exchange is declared and a publishing channel open.
func firedBus(t *testing.T, raw string) (*bus.Bus, *Transport) {
	t.Helper()
	b := newTestBus(t, raw, "svc", "p1")
	startBus(t, b)
	fireItem(t, b, 0)
	return b, b.Transport().(*Transport)
}
