package bus

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/busline/busline/idempotency"
)

// syncBuffer is a log destination safe for the guard's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testGuard(t *testing.T, store idempotency.Store, leaseFor time.Duration) (*nameGuard, *syncBuffer) {
	t.Helper()
	var logs syncBuffer
	g := newNameGuard(store, "billing", "worker-1", slog.New(slog.NewTextHandler(&logs, nil)))
	if g == nil {
		t.Fatal("no guard on a store that extends leases")
	}
	g.leaseFor, g.renewedMore = leaseFor, time.Millisecond
	return g, &logs
}

// waitPast returns once the clock is past t.
func waitPast(t time.Time) {
	for !time.Now().After(t) {
		time.Sleep(time.Until(t) + time.Millisecond)
	}
}

// Two live processes of one name: the one that came second sees the
// other's lease renewed and reports it, once; when the other gives the
// name back, it takes the name and says the other is gone.
func TestNameGuardReportsALiveDuplicate(t *testing.T) {
	ctx := context.Background()
	store := idempotency.NewMemoryStore()
	first, firstLogs := testGuard(t, store, time.Hour)
	second, logs := testGuard(t, store, time.Hour)

	first.check(ctx)
	second.check(ctx)
	if second.duplicate.Load() || second.held != nil {
		t.Fatalf("after one look: duplicate %v, held %v; want neither (it may be a dead run's lease)", second.duplicate.Load(), second.held)
	}
	waitPast(time.Now().Add(2 * second.renewedMore))
	first.check(ctx) // renews
	second.check(ctx)
	if !second.duplicate.Load() || !strings.Contains(logs.String(), "another live process uses this process name") {
		t.Fatalf("renewed lease not reported: duplicate %v, logs %q", second.duplicate.Load(), logs.String())
	}
	waitPast(time.Now().Add(2 * second.renewedMore))
	first.check(ctx)
	second.check(ctx)
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 {
		t.Errorf("%d error lines, want 1: %s", n, logs.String())
	}
	if strings.Contains(firstLogs.String(), "level=ERROR") {
		t.Errorf("the holder logged an error: %s", firstLogs.String())
	}

	first.start(time.Hour) // as Start does: a check, then Close gives the name back
	first.close()
	second.check(ctx)
	if second.held == nil || second.duplicate.Load() || !strings.Contains(logs.String(), "is gone") {
		t.Fatalf("after the other closed: held %v, duplicate %v, logs %q; want the name taken", second.held, second.duplicate.Load(), logs.String())
	}
}

// A lease left by a run that died (never renewed) is not a duplicate: the
// restarted process takes the name once the lease expires, reporting
// nothing.
func TestNameGuardWaitsOutADeadRun(t *testing.T) {
	ctx := context.Background()
	store := idempotency.NewMemoryStore()
	dead, _ := testGuard(t, store, 50*time.Millisecond)
	dead.check(ctx) // then killed: never renewed, never given back
	restarted, logs := testGuard(t, store, 50*time.Millisecond)
	deadline := time.Now().Add(10 * time.Second)
	for restarted.held == nil {
		if time.Now().After(deadline) {
			t.Fatal("the dead run's lease was never taken")
		}
		restarted.check(ctx)
		time.Sleep(5 * time.Millisecond)
	}
	if restarted.duplicate.Load() || strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("a dead run reported as a live duplicate: %s", logs.String())
	}
}
