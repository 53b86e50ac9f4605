package idempotency

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for MemoryStore.now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func clockedStore() (*MemoryStore, *fakeClock) {
	c := &fakeClock{t: time.Now()}
	s := NewMemoryStore()
	s.now = c.now
	return s, c
}

func mustBegin(t *testing.T, s Store, key string, lease time.Duration, want State) Lease {
	t.Helper()
	st, l, err := s.Begin(context.Background(), key, lease)
	if err != nil || st != want {
		t.Fatalf("Begin(%s) = %v, %v; want %v", key, st, err, want)
	}
	return l
}

func TestMemoryLeaseExpiryTakeover(t *testing.T) {
	s, clock := clockedStore()
	ctx := context.Background()
	old := mustBegin(t, s, "g:e", time.Minute, Fresh)
	clock.advance(59 * time.Second)
	held := mustBegin(t, s, "g:e", time.Minute, Held)
	if !held.Expires.Equal(old.Expires) {
		t.Fatalf("Held expiry %v, want the holder's %v", held.Expires, old.Expires)
	}
	clock.advance(2 * time.Second)
	taken := mustBegin(t, s, "g:e", time.Minute, Fresh)
	if err := s.Commit(ctx, old, time.Hour); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("late Commit = %v, want ErrLeaseLost", err)
	}
	if err := s.Abort(ctx, old); err != nil {
		t.Fatal(err)
	}
	mustBegin(t, s, "g:e", time.Minute, Held)
	if err := s.Commit(ctx, taken, time.Hour); err != nil {
		t.Fatal(err)
	}
	mustBegin(t, s, "g:e", time.Minute, Done)
}

func TestMemoryRetentionExpiry(t *testing.T) {
	s, clock := clockedStore()
	l := mustBegin(t, s, "g:e", time.Minute, Fresh)
	clock.advance(30 * time.Second)
	if err := s.Commit(context.Background(), l, time.Hour); err != nil {
		t.Fatal(err)
	}
	// Retention runs from the commit, not from the claim.
	clock.advance(time.Hour - time.Second)
	mustBegin(t, s, "g:e", time.Minute, Done)
	clock.advance(2 * time.Second)
	mustBegin(t, s, "g:e", time.Minute, Fresh)
}

func TestMemoryCommitAfterExpiryWithoutTakeover(t *testing.T) {
	// A holder whose lease ran out but whom nobody replaced still commits:
	// the token, not the clock, decides.
	s, clock := clockedStore()
	l := mustBegin(t, s, "g:e", time.Second, Fresh)
	clock.advance(time.Minute)
	if err := s.Commit(context.Background(), l, time.Hour); err != nil {
		t.Fatalf("Commit = %v, want nil", err)
	}
	mustBegin(t, s, "g:e", time.Minute, Done)
}

func TestMemorySweepBoundsMemory(t *testing.T) {
	s, clock := clockedStore()
	ctx := context.Background()
	for i := range 5000 {
		l := mustBegin(t, s, "g:"+string(rune('a'+i%26))+time.Duration(i).String(), time.Minute, Fresh)
		if err := s.Commit(ctx, l, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	clock.advance(2 * time.Hour)
	for i := range 5000 {
		mustBegin(t, s, "fresh:"+time.Duration(i).String(), time.Minute, Fresh)
	}
	if n := s.Len(); n >= 10000 {
		t.Fatalf("Len = %d after every committed key expired: expired keys are never swept", n)
	}
}

// IsDone tells a committed key from a free or leased one, and leaves no
// claim on a free key.
func TestIsDone(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryStore()
	if done, err := IsDone(ctx, s, "g:free"); err != nil || done {
		t.Fatalf("IsDone of a free key = %v, %v", done, err)
	}
	if st, _, err := s.Begin(ctx, "g:free", time.Minute); err != nil || st != Fresh {
		t.Fatalf("Begin after IsDone = %v, %v; want Fresh (no claim left)", st, err)
	}
	if done, err := IsDone(ctx, s, "g:free"); err != nil || done {
		t.Fatalf("IsDone of a leased key = %v, %v; want not done", done, err)
	}
	_, l, err := s.Begin(ctx, "g:committed", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, l, time.Hour); err != nil {
		t.Fatal(err)
	}
	if done, err := IsDone(ctx, s, "g:committed"); err != nil || !done {
		t.Fatalf("IsDone of a committed key = %v, %v; want done", done, err)
	}
}
