package idempotency

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/middleware"
	"github.com/busline/busline/transports"
)

// fakeTxStore is a TxStore over a MemoryStore whose transactions buffer
// writes until they commit.
type fakeTxStore struct {
	*MemoryStore
	mu        sync.Mutex
	committed []string
	open      int
}

type fakeTx struct {
	s      *fakeTxStore
	lease  Lease
	ret    time.Duration
	writes []string
	done   bool
}

type fakeTxKey struct{}

func (s *fakeTxStore) BeginTx(ctx context.Context, key string, leaseFor, retention time.Duration) (State, Lease, Tx, error) {
	st, l, err := s.Begin(ctx, key, leaseFor)
	if err != nil || st != Fresh {
		return st, l, nil, err
	}
	s.mu.Lock()
	s.open++
	s.mu.Unlock()
	return st, l, &fakeTx{s: s, lease: l, ret: retention}, nil
}

func (s *fakeTxStore) snapshot() (committed []string, open int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.committed), s.open
}

func (tx *fakeTx) WithContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, fakeTxKey{}, tx)
}

func (tx *fakeTx) Commit(ctx context.Context) error {
	if tx.done {
		return errors.New("fake tx closed")
	}
	tx.done = true
	tx.s.mu.Lock()
	defer tx.s.mu.Unlock()
	tx.s.open--
	if err := tx.s.MemoryStore.Commit(ctx, tx.lease, tx.ret); err != nil {
		return err
	}
	tx.s.committed = append(tx.s.committed, tx.writes...)
	return nil
}

func (tx *fakeTx) Rollback(ctx context.Context) error {
	if tx.done {
		return errors.New("fake tx closed")
	}
	tx.done = true
	tx.s.mu.Lock()
	tx.s.open--
	tx.s.mu.Unlock()
	return tx.s.Abort(ctx, tx.lease)
}

func (tx *fakeTx) BeginAttempt(context.Context) (func(context.Context, bool) error, error) {
	mark := len(tx.writes)
	return func(_ context.Context, failed bool) error {
		if failed {
			tx.writes = tx.writes[:mark]
		}
		return nil
	}, nil
}

func write(ctx context.Context, what string) {
	tx := ctx.Value(fakeTxKey{}).(*fakeTx)
	tx.writes = append(tx.writes, what)
}

func msgFor(id string) (*message.Message, *transports.DeliveryInfo) {
	msg := message.NewMessage(id, nil)
	info := &transports.DeliveryInfo{Attempt: 1}
	msg.SetContext(transports.WithDeliveryInfo(context.Background(), info))
	return msg, info
}

func txChain(s Store, inner ...message.HandlerMiddleware) func(message.HandlerFunc) message.HandlerFunc {
	return func(h message.HandlerFunc) message.HandlerFunc {
		for i := len(inner) - 1; i >= 0; i-- {
			h = inner[i](h)
		}
		return Middleware(Options{Store: s, Group: "g", Lease: time.Minute, HeldWait: -1})(h)
	}
}

func TestTxCommitsEffectsOnlyOnSuccess(t *testing.T) {
	s := &fakeTxStore{MemoryStore: NewMemoryStore()}
	fail := true
	h := txChain(s)(func(msg *message.Message) ([]*message.Message, error) {
		write(msg.Context(), "row-"+msg.UUID)
		if fail {
			return nil, errors.New("boom")
		}
		return nil, nil
	})
	msg, _ := msgFor("e1")
	if _, err := h(msg); err == nil {
		t.Fatal("want the handler's error")
	}
	if c, open := s.snapshot(); len(c) != 0 || open != 0 {
		t.Fatalf("after a failure: committed %v, %d open transactions; want none", c, open)
	}
	if msg.Context().Value(fakeTxKey{}) != nil {
		t.Fatal("the transaction stayed in the message context after the handler")
	}
	fail = false
	for range 2 {
		msg, _ := msgFor("e1")
		if _, err := h(msg); err != nil {
			t.Fatal(err)
		}
	}
	if c, open := s.snapshot(); !slices.Equal(c, []string{"row-e1"}) || open != 0 {
		t.Fatalf("committed %v, %d open; want [row-e1] once", c, open)
	}
}

func TestTxRollsBackOnPanic(t *testing.T) {
	s := &fakeTxStore{MemoryStore: NewMemoryStore()}
	h := txChain(s)(func(msg *message.Message) ([]*message.Message, error) {
		write(msg.Context(), "row")
		panic("boom")
	})
	func() {
		defer func() { _ = recover() }()
		msg, _ := msgFor("e1")
		_, _ = h(msg)
	}()
	if c, open := s.snapshot(); len(c) != 0 || open != 0 {
		t.Fatalf("after a panic: committed %v, %d open; want none", c, open)
	}
	mustBegin(t, s, "g:e1", time.Minute, Fresh)
}

// TestAttemptsUndoFailedTry: an in-process retry inside one transaction
// must not commit the writes of the failed try.
func TestAttemptsUndoFailedTry(t *testing.T) {
	s := &fakeTxStore{MemoryStore: NewMemoryStore()}
	try := 0
	retry := middleware.Retry(middleware.RetryPolicy{Tries: 3, InitialInterval: time.Millisecond})
	h := txChain(s, retry, Attempts(), Attempts())(func(msg *message.Message) ([]*message.Message, error) {
		try++
		write(msg.Context(), "try-"+string(rune('0'+try)))
		if try == 1 {
			return nil, errors.New("first try fails after writing")
		}
		return nil, nil
	})
	msg, _ := msgFor("e1")
	if _, err := h(msg); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.snapshot(); !slices.Equal(c, []string{"try-2"}) {
		t.Fatalf("committed %v, want only the successful try's write [try-2]", c)
	}
}

func TestAttemptsOutsideTxDoesNothing(t *testing.T) {
	ran := false
	h := Attempts()(func(*message.Message) ([]*message.Message, error) { ran = true; return nil, nil })
	msg, _ := msgFor("e1")
	if _, err := h(msg); err != nil || !ran {
		t.Fatalf("ran=%v err=%v", ran, err)
	}
}

func TestTxDuplicateAndHeldOpenNoTransaction(t *testing.T) {
	s := &fakeTxStore{MemoryStore: NewMemoryStore()}
	runs := 0
	h := txChain(s)(func(msg *message.Message) ([]*message.Message, error) { runs++; return nil, nil })
	msg, _ := msgFor("done")
	if _, err := h(msg); err != nil {
		t.Fatal(err)
	}
	msg, _ = msgFor("done")
	if _, err := h(msg); err != nil || runs != 1 {
		t.Fatalf("duplicate: err=%v runs=%d", err, runs)
	}
	mustBegin(t, s, "g:held", time.Minute, Fresh)
	msg, info := msgFor("held")
	if _, err := h(msg); !errors.Is(err, ErrHeld) || info.RetryAfter <= 0 {
		t.Fatalf("held: err=%v RetryAfter=%v", err, info.RetryAfter)
	}
	if _, open := s.snapshot(); open != 0 || runs != 1 {
		t.Fatalf("open=%d runs=%d", open, runs)
	}
}

// TestHeldRetryAfterFollowsLease: the retry comes back when the holder's
// lease ends.
func TestHeldRetryAfterFollowsLease(t *testing.T) {
	s, _ := clockedStore()
	mustBegin(t, s, "g:e1", 30*time.Second, Fresh)
	h := Middleware(Options{Store: s, Group: "g", HeldWait: -1})(func(*message.Message) ([]*message.Message, error) {
		t.Fatal("handler ran while the key was held")
		return nil, nil
	})
	msg, info := msgFor("e1")
	if _, err := h(msg); !errors.Is(err, ErrHeld) {
		t.Fatalf("err = %v, want ErrHeld", err)
	}
	if info.RetryAfter < 25*time.Second || info.RetryAfter > 30*time.Second {
		t.Fatalf("RetryAfter = %v, want the 30s lease measured from its start", info.RetryAfter)
	}
}

// deferringStore is a MemoryStore that defers commits: they wait in
// queued until the test applies them.
type deferringStore struct {
	*MemoryStore
	mu     sync.Mutex
	queued []func()
	lose   bool // the commits applied report ErrLeaseLost
}

func (s *deferringStore) CommitDeferred(l Lease, retention time.Duration, done func(error)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queued = append(s.queued, func() {
		if s.lose {
			done(ErrLeaseLost)
			return
		}
		done(s.Commit(context.Background(), l, retention))
	})
	return true
}

func (s *deferringStore) apply() {
	s.mu.Lock()
	q := s.queued
	s.queued = nil
	s.mu.Unlock()
	for _, f := range q {
		f()
	}
}

// With a DeferredCommitter the middleware returns once the handler
// succeeded and leaves the commit to the store; a failed handler still
// aborts at once, and a lost lease reported later is counted.
func TestDeferredCommit(t *testing.T) {
	s := &deferringStore{MemoryStore: NewMemoryStore()}
	var lost int
	h := Middleware(Options{Store: s, Group: "g", HeldWait: -1, OnLeaseLost: func(*message.Message) { lost++ }})(
		func(msg *message.Message) ([]*message.Message, error) {
			if msg.UUID == "fail" {
				return nil, errors.New("boom")
			}
			return nil, nil
		})
	ctx := context.Background()
	msg, _ := msgFor("e1")
	if _, err := h(msg); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := s.Begin(ctx, Key("g", "e1"), time.Minute); st != Held {
		t.Fatalf("before the deferred commit is applied the key is %v, want held", st)
	}
	s.apply()
	if st, _, _ := s.Begin(ctx, Key("g", "e1"), time.Minute); st != Done {
		t.Fatalf("after the deferred commit the key is %v, want done", st)
	}
	// A failed handler aborts synchronously: nothing is deferred.
	msg, _ = msgFor("fail")
	if _, err := h(msg); err == nil {
		t.Fatal("want the handler's error")
	}
	if len(s.queued) != 0 {
		t.Fatalf("%d commits deferred for a failed handler", len(s.queued))
	}
	if st, _, _ := s.Begin(ctx, Key("g", "fail"), time.Minute); st != Fresh {
		t.Fatalf("after a failed handler the key is %v, want fresh", st)
	}
	// A deferred commit that finds its lease lost is reported.
	msg, _ = msgFor("e2")
	if _, err := h(msg); err != nil {
		t.Fatal(err)
	}
	s.lose = true
	s.apply()
	if lost != 1 {
		t.Fatalf("OnLeaseLost called %d times, want 1", lost)
	}
}
