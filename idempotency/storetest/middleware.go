package storetest

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/idempotency"
)

func runMiddleware(t *testing.T, h Harness) {
	t.Run("DuplicateRunsOnce", func(t *testing.T) { testDuplicateRunsOnce(t, h) })
	t.Run("FirstAttemptFailsRetryRuns", func(t *testing.T) { testFailThenRetry(t, h) })
	t.Run("HeldIsErrHeldWithRetryAfter", func(t *testing.T) { testHeldMiddleware(t, h) })
	t.Run("HeldWaitSeesHolderFinish", func(t *testing.T) { testHeldWait(t, h) })
	t.Run("PanicReleasesClaim", func(t *testing.T) { testPanicReleases(t, h) })
	t.Run("RacingProcessesRunOnce", func(t *testing.T) { testRacing(t, h) })
	t.Run("GroupsAreIndependent", func(t *testing.T) { testGroups(t, h) })
}

type counter struct {
	mu   sync.Mutex
	runs map[string]int
}

func (c *counter) handler(fail func(id string, run int) error) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		c.mu.Lock()
		if c.runs == nil {
			c.runs = map[string]int{}
		}
		c.runs[msg.UUID]++
		n := c.runs[msg.UUID]
		c.mu.Unlock()
		if fail != nil {
			return nil, fail(msg.UUID, n)
		}
		return nil, nil
	}
}

func (c *counter) get(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs[id]
}

func chain(s idempotency.Store, group string, h message.HandlerFunc) message.HandlerFunc {
	return idempotency.Middleware(idempotency.Options{Store: s, Group: group, Lease: 10 * time.Second})(h)
}

func deliver(t testing.TB, h message.HandlerFunc, id string) error {
	t.Helper()
	msg, _ := newMessage(id)
	_, err := h(msg)
	return err
}

func testDuplicateRunsOnce(t *testing.T, h Harness) {
	var c counter
	var dups atomic.Int32
	mw := idempotency.Middleware(idempotency.Options{
		Store: store(t, h), Group: "g", Lease: 10 * time.Second,
		OnDuplicate: func(*message.Message) { dups.Add(1) },
	})
	hf := mw(c.handler(nil))
	for range 3 {
		if err := deliver(t, hf, "ev-1"); err != nil {
			t.Fatalf("delivery: %v", err)
		}
	}
	if got := c.get("ev-1"); got != 1 {
		t.Fatalf("handler ran %d times for three deliveries, want 1", got)
	}
	if dups.Load() != 2 {
		t.Fatalf("OnDuplicate called %d times, want 2", dups.Load())
	}
}

// testFailThenRetry is the regression of Watermill's Deduplicator, which
// records the event before the handler runs and so drops the retry of a
// failed first attempt.
func testFailThenRetry(t *testing.T, h Harness) {
	var c counter
	boom := errors.New("boom")
	hf := chain(store(t, h), "g", c.handler(func(_ string, run int) error {
		if run == 1 {
			return boom
		}
		return nil
	}))
	if err := deliver(t, hf, "ev-1"); !errors.Is(err, boom) {
		t.Fatalf("first delivery = %v, want the handler's error", err)
	}
	if err := deliver(t, hf, "ev-1"); err != nil {
		t.Fatalf("redelivery = %v, want nil", err)
	}
	if err := deliver(t, hf, "ev-1"); err != nil {
		t.Fatalf("duplicate after success = %v", err)
	}
	if got := c.get("ev-1"); got != 2 {
		t.Fatalf("handler ran %d times, want 2 (failed first attempt, then the retry)", got)
	}
}

func testHeldMiddleware(t *testing.T, h Harness) {
	ss := stores(t, h, 2)
	const lease = 10 * time.Second
	entered, release := make(chan struct{}), make(chan struct{})
	var runs atomic.Int32
	slow := func(msg *message.Message) ([]*message.Message, error) {
		runs.Add(1)
		close(entered)
		<-release
		return nil, nil
	}
	var conflicts atomic.Int32
	first := idempotency.Middleware(idempotency.Options{Store: ss[0], Group: "g", Lease: lease})(slow)
	second := idempotency.Middleware(idempotency.Options{
		Store: ss[1], Group: "g", Lease: lease, HeldWait: -1,
		OnConflict: func(*message.Message) { conflicts.Add(1) },
	})(slow)
	done := make(chan error, 1)
	go func() { done <- deliver(t, first, "ev-1") }()
	<-entered
	msg, info := newMessage("ev-1")
	if _, err := second(msg); !errors.Is(err, idempotency.ErrHeld) {
		t.Fatalf("delivery while held = %v, want ErrHeld", err)
	}
	if info.RetryAfter <= 0 || info.RetryAfter > lease+time.Second {
		t.Fatalf("RetryAfter = %v, want the rest of the holder's lease (<= %v)", info.RetryAfter, lease)
	}
	if conflicts.Load() != 1 {
		t.Fatalf("OnConflict called %d times, want 1", conflicts.Load())
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("holder: %v", err)
	}
	if err := deliver(t, second, "ev-1"); err != nil {
		t.Fatalf("redelivery after the holder committed = %v", err)
	}
	if runs.Load() != 1 {
		t.Fatalf("handler ran %d times, want 1", runs.Load())
	}
}

func testPanicReleases(t *testing.T, h Harness) {
	var c counter
	hf := chain(store(t, h), "g", c.handler(func(_ string, run int) error {
		if run == 1 {
			panic("handler panic")
		}
		return nil
	}))
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the panic did not reach the caller")
			}
		}()
		_ = deliver(t, hf, "ev-1")
	}()
	if err := deliver(t, hf, "ev-1"); err != nil {
		t.Fatalf("redelivery after a panic = %v, want the handler to run (claim released)", err)
	}
	if got := c.get("ev-1"); got != 2 {
		t.Fatalf("handler ran %d times, want 2", got)
	}
}

// testRacing delivers the same event to several processes at once, each
// with its own store handle, until every copy is acknowledged.
func testRacing(t *testing.T, h Harness) {
	const procs = 4
	ss := stores(t, h, procs)
	var c counter
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range procs {
		hf := chain(ss[i], "g", c.handler(nil))
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for range 1000 { // a held copy is redelivered until acknowledged
				err := deliver(t, hf, "ev-race")
				if err == nil {
					return
				}
				if !errors.Is(err, idempotency.ErrHeld) {
					t.Errorf("delivery: %v", err)
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
			t.Error("a copy was never acknowledged")
		}()
	}
	close(start)
	wg.Wait()
	if got := c.get("ev-race"); got != 1 {
		t.Fatalf("handler ran %d times across %d racing processes, want 1", got, procs)
	}
}

func testGroups(t *testing.T, h Harness) {
	s := store(t, h)
	var a, b counter
	ha, hb := chain(s, "svc-a", a.handler(nil)), chain(s, "svc-b", b.handler(nil))
	for range 2 {
		for _, hf := range []message.HandlerFunc{ha, hb} {
			if err := deliver(t, hf, "ev-1"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if a.get("ev-1") != 1 || b.get("ev-1") != 1 {
		t.Fatalf("runs per group = %d, %d; want 1 each", a.get("ev-1"), b.get("ev-1"))
	}
}

// testHeldWait: a copy that arrives while the first is being handled waits
// in process and is acknowledged as a duplicate once the holder commits.
func testHeldWait(t *testing.T, h Harness) {
	ss := stores(t, h, 2)
	entered, release := make(chan struct{}), make(chan struct{})
	var runs atomic.Int32
	slow := func(msg *message.Message) ([]*message.Message, error) {
		runs.Add(1)
		close(entered)
		<-release
		return nil, nil
	}
	var conflicts, dups atomic.Int32
	first := idempotency.Middleware(idempotency.Options{Store: ss[0], Group: "g", Lease: 10 * time.Second})(slow)
	second := idempotency.Middleware(idempotency.Options{
		Store: ss[1], Group: "g", Lease: 10 * time.Second, HeldWait: 20 * time.Second,
		OnConflict:  func(*message.Message) { conflicts.Add(1) },
		OnDuplicate: func(*message.Message) { dups.Add(1) },
	})(slow)
	done := make(chan error, 1)
	go func() { done <- deliver(t, first, "ev-1") }()
	<-entered
	waited := make(chan error, 1)
	go func() { waited <- deliver(t, second, "ev-1") }()
	// The second copy is waiting; let the holder commit.
	eventually(t, 10*time.Second, "the second copy to see the conflict", func() bool { return conflicts.Load() == 1 })
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("holder: %v", err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("waiting copy = %v, want nil (acknowledged as a duplicate)", err)
	}
	if runs.Load() != 1 || dups.Load() != 1 || conflicts.Load() != 1 {
		t.Fatalf("runs %d, duplicates %d, conflicts %d; want 1 each", runs.Load(), dups.Load(), conflicts.Load())
	}
}
