package bus

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/busline/busline/idempotency"
	"github.com/busline/busline/internal/syncbuf"
)

// testGuard guards process "worker-1" in group on store, with a lease of
// leaseFor and a slack of a fifth of it.
func testGuard(t *testing.T, store idempotency.Store, group string, leaseFor time.Duration) (*nameGuard, *syncbuf.Buffer) {
	t.Helper()
	var logs syncbuf.Buffer
	g := newNameGuard(store, "worker-1", []string{group}, slog.New(slog.NewTextHandler(&logs, nil)))
	if g == nil {
		t.Fatal("no guard on a store that extends leases")
	}
	g.leaseFor, g.slack = leaseFor, leaseFor/5
	return g, &logs
}

func (g *nameGuard) state() (held, duplicate bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.names[0].held != nil, g.names[0].duplicate
}

// checkUntil runs the checks of the guards in turn, a few milliseconds
// apart, until done holds; it fails the test after 10 s.
func checkUntil(t *testing.T, what string, done func() bool, guards ...*nameGuard) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		for _, g := range guards {
			g.check(context.Background())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Two live processes of one name in one group: the one that came second
// sees the other's lease held past its end (renewed) and reports it,
// once; the holder reports nothing; once the other gives the name back,
// the second takes it and says the other is gone.
func TestNameGuardReportsALiveDuplicate(t *testing.T) {
	store := idempotency.NewMemoryStore()
	// A lease long enough that a stalled test goroutine does not let it
	// run out between the two guards' checks.
	first, firstLogs := testGuard(t, store, "billing-invoice", time.Second)
	second, logs := testGuard(t, store, "billing-invoice", time.Second)
	first.check(context.Background())
	checkUntil(t, "the duplicate reported", func() bool { _, dup := second.state(); return dup }, first, second)
	if !strings.Contains(logs.String(), "another live process uses this process name") {
		t.Fatalf("logs %q", logs.String())
	}
	for range 5 {
		first.check(context.Background())
		second.check(context.Background())
	}
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 {
		t.Errorf("%d error lines, want 1: %s", n, logs.String())
	}
	if strings.Contains(firstLogs.String(), "level=ERROR") {
		t.Errorf("the holder logged an error: %s", firstLogs.String())
	}

	first.start(context.Background(), time.Hour) // as Start does: a check, then Close gives the name back
	first.close()
	second.check(context.Background())
	if held, dup := second.state(); !held || dup || !strings.Contains(logs.String(), "is gone") {
		t.Fatalf("after the other closed: held %v, duplicate %v, logs %q; want the name taken", held, dup, logs.String())
	}
}

// A lease left by a run that died (never renewed) is not a duplicate: the
// restarted process takes the name once the lease ends, reporting nothing.
// The name is per group: processes of one name in other groups share
// nothing.
func TestNameGuardWaitsOutADeadRun(t *testing.T) {
	store := idempotency.NewMemoryStore()
	dead, _ := testGuard(t, store, "billing-invoice", 100*time.Millisecond)
	dead.check(context.Background()) // then killed: never renewed, never given back
	other, otherLogs := testGuard(t, store, "billing-refund", 100*time.Millisecond)
	restarted, logs := testGuard(t, store, "billing-invoice", 100*time.Millisecond)
	checkUntil(t, "the dead run's lease taken", func() bool { held, _ := restarted.state(); return held }, restarted, other)
	if _, dup := restarted.state(); dup || strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("a dead run reported as a live duplicate: %s", logs.String())
	}
	if held, dup := other.state(); !held || dup || strings.Contains(otherLogs.String(), "level=ERROR") {
		t.Fatalf("the same name in another group: held %v, duplicate %v, logs %s", held, dup, otherLogs.String())
	}
}

// lateStore answers Begin late, with a Held lease's end as early as the
// Redis store reports it after a slow round trip (its start plus the
// PTTL read at the end), while slow is set.
type lateStore struct {
	*idempotency.MemoryStore
	delay time.Duration
	slow  bool
}

func (s *lateStore) Begin(ctx context.Context, key string, d time.Duration) (idempotency.State, idempotency.Lease, error) {
	st, l, err := s.MemoryStore.Begin(ctx, key, d)
	if s.slow {
		time.Sleep(s.delay)
		l.Expires = l.Expires.Add(-10 * s.delay)
	}
	return st, l, err
}

// A check too slow to date the lease it saw is not used: a dead run's
// lease, misdated early by a slow first check, is not taken for renewed.
func TestNameGuardIgnoresASlowCheck(t *testing.T) {
	store := &lateStore{MemoryStore: idempotency.NewMemoryStore()}
	dead, _ := testGuard(t, store, "billing-invoice", 500*time.Millisecond)
	dead.check(context.Background())
	restarted, logs := testGuard(t, store, "billing-invoice", 500*time.Millisecond)
	store.delay, store.slow = restarted.slack, true // more than half the slack
	restarted.check(context.Background())
	store.slow = false
	checkUntil(t, "the dead run's lease taken", func() bool { held, _ := restarted.state(); return held }, restarted)
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("a dead run reported after a slow check: %s", logs.String())
	}
}

// start takes the name before it returns, so of two guards started one
// after the other the first holds the name and the later one sees it
// held; close gives it back.
func TestNameGuardStartTakesTheNameFirst(t *testing.T) {
	store := idempotency.NewMemoryStore()
	first, _ := testGuard(t, store, "billing-invoice", time.Minute)
	second, _ := testGuard(t, store, "billing-invoice", time.Minute)
	first.start(context.Background(), time.Hour)
	if held, _ := first.state(); !held {
		t.Fatal("the first guard does not hold the name when start returns")
	}
	second.start(context.Background(), time.Hour)
	if held, _ := second.state(); held {
		t.Fatal("the later guard took a name that is held")
	}
	first.close()
	second.close()
	if st, _, err := store.Begin(context.Background(), idempotency.ProcessNameKey("billing-invoice", "worker-1"), time.Minute); err != nil || st != idempotency.Fresh {
		t.Fatalf("after close the name is %v, %v; want free", st, err)
	}
}
