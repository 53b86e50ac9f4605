// Package storetest is the conformance suite of idempotency stores: every
// Store (memory, Redis, Postgres) runs it against a live backend, through
// the Store interface, through idempotency.Middleware and through a bus on
// the in-memory transport.
package storetest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/idempotency"
	"github.com/busline/busline/transports"
)

// Harness tells the suite how to reach one store.
type Harness struct {
	// URL returns a store URL for one test, isolated from every other test
	// (its own key prefix or table), and registers a t.Cleanup that removes
	// what the test created. Stores opened with the same URL share state:
	// they are processes of one deployment.
	URL func(t testing.TB) string
	// Shared: stores opened with the same URL share keys. False for the
	// memory store, whose "processes" then share one Store instead.
	Shared bool
}

// Run runs every check of the suite as a subtest.
func Run(t *testing.T, h Harness) {
	t.Run("FreshThenDone", func(t *testing.T) { testFreshThenDone(t, h) })
	t.Run("AbortLetsRetryClaim", func(t *testing.T) { testAbort(t, h) })
	t.Run("HeldWhileLeased", func(t *testing.T) { testHeld(t, h) })
	t.Run("ConcurrentBeginOneFresh", func(t *testing.T) { testConcurrentBegin(t, h) })
	t.Run("LeaseExpiryTakeover", func(t *testing.T) { testTakeover(t, h) })
	t.Run("TokenStopsLateCommit", func(t *testing.T) { testLateCommit(t, h) })
	t.Run("RetentionExpiry", func(t *testing.T) { testRetention(t, h) })
	t.Run("IsDone", func(t *testing.T) { testIsDone(t, h) })
	t.Run("Middleware", func(t *testing.T) { runMiddleware(t, h) })
	t.Run("Bus", func(t *testing.T) { runBus(t, h) })
}

// stores opens n handles on one fresh namespace (n processes).
func stores(t testing.TB, h Harness, n int) []idempotency.Store {
	t.Helper()
	url := h.URL(t)
	out := make([]idempotency.Store, n)
	for i := range out {
		if i > 0 && !h.Shared {
			out[i] = out[0]
			continue
		}
		s, err := idempotency.Open(context.Background(), url, nil)
		if err != nil {
			t.Fatalf("open %s: %v", url, err)
		}
		t.Cleanup(func() { _ = s.Close() })
		out[i] = s
	}
	return out
}

func store(t testing.TB, h Harness) idempotency.Store { return stores(t, h, 1)[0] }

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func begin(t testing.TB, s idempotency.Store, key string, lease time.Duration) (idempotency.State, idempotency.Lease) {
	t.Helper()
	st, l, err := s.Begin(ctx(t), key, lease)
	if err != nil {
		t.Fatalf("Begin(%s): %v", key, err)
	}
	return st, l
}

func wantState(t testing.TB, s idempotency.Store, key string, want idempotency.State) idempotency.Lease {
	t.Helper()
	st, l := begin(t, s, key, time.Minute)
	if st != want {
		t.Fatalf("Begin(%s) = %v, want %v", key, st, want)
	}
	return l
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testFreshThenDone(t *testing.T, h Harness) {
	s := store(t, h)
	l := wantState(t, s, "g:e1", idempotency.Fresh)
	if l.Key != "g:e1" || l.Token == "" || !l.Expires.After(time.Now()) {
		t.Fatalf("fresh lease = %+v, want key g:e1, a token and a future expiry", l)
	}
	if err := s.Commit(ctx(t), l, time.Hour); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	wantState(t, s, "g:e1", idempotency.Done)
	// Another key, and the same event in another group, are independent.
	wantState(t, s, "g:e2", idempotency.Fresh)
	wantState(t, s, "other:e1", idempotency.Fresh)
	// Committing twice is a lost lease, not a second success.
	if err := s.Commit(ctx(t), l, time.Hour); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("second Commit = %v, want ErrLeaseLost", err)
	}
	wantState(t, s, "g:e1", idempotency.Done)
}

// testIsDone: idempotency.IsDone tells a committed key from a free or a
// leased one (a handler still working is not done), in this store and in
// another process's, and leaves no claim on a free key.
func testIsDone(t *testing.T, h Harness) {
	ss := stores(t, h, 2)
	for _, s := range ss {
		if done, err := idempotency.IsDone(ctx(t), s, "g:free"); err != nil || done {
			t.Fatalf("IsDone of a free key = %v, %v; want false", done, err)
		}
	}
	wantState(t, ss[1], "g:free", idempotency.Fresh) // no claim left
	for _, s := range ss {
		if done, err := idempotency.IsDone(ctx(t), s, "g:free"); err != nil || done {
			t.Fatalf("IsDone of a leased key = %v, %v; want false", done, err)
		}
	}
	l := wantState(t, ss[0], "g:e1", idempotency.Fresh)
	if err := ss[0].Commit(ctx(t), l, time.Hour); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	for _, s := range ss {
		if done, err := idempotency.IsDone(ctx(t), s, "g:e1"); err != nil || !done {
			t.Fatalf("IsDone of a committed key = %v, %v; want true", done, err)
		}
	}
	if done, err := idempotency.IsDone(ctx(t), ss[1], "other:e1"); err != nil || done {
		t.Fatalf("IsDone of the event in another group = %v, %v; want false", done, err)
	}
}

func testAbort(t *testing.T, h Harness) {
	s := store(t, h)
	l1 := wantState(t, s, "g:e", idempotency.Fresh)
	if err := s.Abort(ctx(t), l1); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	l2 := wantState(t, s, "g:e", idempotency.Fresh)
	if l2.Token == l1.Token {
		t.Fatal("a new claim reused the aborted lease's token")
	}
	// The aborted holder can no longer commit, nor abort the new claim.
	if err := s.Commit(ctx(t), l1, time.Hour); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("Commit of an aborted lease = %v, want ErrLeaseLost", err)
	}
	if err := s.Abort(ctx(t), l1); err != nil {
		t.Fatalf("Abort of a lost lease = %v, want nil", err)
	}
	wantState(t, s, "g:e", idempotency.Held)
	if err := s.Commit(ctx(t), l2, time.Hour); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	wantState(t, s, "g:e", idempotency.Done)
	// Aborting a committed lease does not forget the key.
	if err := s.Abort(ctx(t), l2); err != nil {
		t.Fatalf("Abort after Commit: %v", err)
	}
	wantState(t, s, "g:e", idempotency.Done)
}

func testHeld(t *testing.T, h Harness) {
	ss := stores(t, h, 2)
	before := time.Now()
	st, l := begin(t, ss[0], "g:e", 10*time.Second)
	if st != idempotency.Fresh {
		t.Fatalf("first Begin = %v", st)
	}
	st, held := begin(t, ss[1], "g:e", time.Second)
	if st != idempotency.Held {
		t.Fatalf("second Begin = %v, want Held", st)
	}
	// The holder's expiry tells the retry when to come back; allow for
	// clock skew between this process and the store.
	if held.Expires.Before(before.Add(5*time.Second)) || held.Expires.After(time.Now().Add(11*time.Second)) {
		t.Fatalf("Held lease expires %v, want about %v", held.Expires, l.Expires)
	}
	if held.Token != "" && held.Token == l.Token {
		t.Fatal("Held returned the holder's token")
	}
}

func testConcurrentBegin(t *testing.T, h Harness) {
	const n = 8
	ss := stores(t, h, n)
	var fresh, held atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			st, _, err := ss[i].Begin(context.Background(), "g:race", time.Minute)
			switch {
			case err != nil:
				t.Errorf("Begin: %v", err)
			case st == idempotency.Fresh:
				fresh.Add(1)
			case st == idempotency.Held:
				held.Add(1)
			default:
				t.Errorf("Begin = %v", st)
			}
		}()
	}
	close(start)
	wg.Wait()
	if fresh.Load() != 1 || held.Load() != n-1 {
		t.Fatalf("%d concurrent Begins: %d fresh, %d held; want 1 fresh", n, fresh.Load(), held.Load())
	}
}

func testTakeover(t *testing.T, h Harness) {
	ss := stores(t, h, 2)
	st, old := begin(t, ss[0], "g:e", 200*time.Millisecond)
	if st != idempotency.Fresh {
		t.Fatalf("first Begin = %v", st)
	}
	var taken idempotency.Lease
	eventually(t, 10*time.Second, "the expired lease to be taken over", func() bool {
		st, l := begin(t, ss[1], "g:e", time.Minute)
		taken = l
		return st == idempotency.Fresh
	})
	if taken.Token == old.Token {
		t.Fatal("takeover kept the old token")
	}
	wantState(t, ss[0], "g:e", idempotency.Held)
}

func testLateCommit(t *testing.T, h Harness) {
	ss := stores(t, h, 2)
	_, late := begin(t, ss[0], "g:e", 200*time.Millisecond)
	var taken idempotency.Lease
	eventually(t, 10*time.Second, "the expired lease to be taken over", func() bool {
		st, l := begin(t, ss[1], "g:e", time.Minute)
		taken = l
		return st == idempotency.Fresh
	})
	// The late holder finishes: its commit must not mark the key done
	// under the new holder, its abort must not release the new claim.
	if err := ss[0].Commit(ctx(t), late, time.Hour); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("late Commit = %v, want ErrLeaseLost", err)
	}
	if err := ss[0].Abort(ctx(t), late); err != nil {
		t.Fatalf("late Abort = %v, want nil", err)
	}
	wantState(t, ss[0], "g:e", idempotency.Held)
	if err := ss[1].Commit(ctx(t), taken, time.Hour); err != nil {
		t.Fatalf("new holder's Commit: %v", err)
	}
	wantState(t, ss[0], "g:e", idempotency.Done)
}

func testRetention(t *testing.T, h Harness) {
	s := store(t, h)
	l := wantState(t, s, "g:short", idempotency.Fresh)
	if err := s.Commit(ctx(t), l, 300*time.Millisecond); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	l2 := wantState(t, s, "g:long", idempotency.Fresh)
	if err := s.Commit(ctx(t), l2, time.Hour); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	wantState(t, s, "g:short", idempotency.Done)
	eventually(t, 10*time.Second, "the done key to expire after its retention", func() bool {
		st, l := begin(t, s, "g:short", time.Minute)
		if st == idempotency.Fresh {
			_ = s.Abort(ctx(t), l)
		}
		return st == idempotency.Fresh
	})
	wantState(t, s, "g:long", idempotency.Done)
}

// message returns a message with DeliveryInfo, as the bus hands it to the chain.
func newMessage(id string) (*message.Message, *transports.DeliveryInfo) {
	msg := message.NewMessage(id, []byte(`{}`))
	info := &transports.DeliveryInfo{Attempt: 1, Group: "g"}
	msg.SetContext(transports.WithDeliveryInfo(context.Background(), info))
	return msg, info
}
