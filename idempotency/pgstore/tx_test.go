package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/busline/busline/idempotency"
	"github.com/busline/busline/idempotency/pgstore"
	"github.com/busline/busline/middleware"
	"github.com/busline/busline/transports"
)

// fixture is a dedup table, an effects table and a store over them.
type fixture struct {
	pool    *pgxpool.Pool
	dedup   string
	effects string
	store   *pgstore.Store
}

func newFixture(t testing.TB) *fixture {
	p := pool(t)
	f := &fixture{pool: p, dedup: table(t, p, "dedup"), effects: effects(t, p)}
	s, err := pgstore.New(context.Background(), p, pgstore.Options{Table: f.dedup, AutoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	f.store = s
	return f
}

// insert is the handler's effect: one row per call, through the event's transaction.
func (f *fixture) insert(msg *message.Message, note string) error {
	tx := pgstore.Tx(msg.Context())
	if tx == nil {
		return errors.New("no transaction in the handler's context")
	}
	_, err := tx.Exec(msg.Context(), "INSERT INTO "+f.effects+" (event_id, note) VALUES ($1, $2)", msg.UUID, note)
	return err
}

func (f *fixture) effectRows(t testing.TB, id string) int {
	return count(t, f.pool, "SELECT count(*) FROM "+f.effects+" WHERE event_id = $1", id)
}

func (f *fixture) dedupRows(t testing.TB, key string) (all, done int) {
	all = count(t, f.pool, "SELECT count(*) FROM "+f.dedup+" WHERE key = $1", key)
	done = count(t, f.pool, "SELECT count(*) FROM "+f.dedup+" WHERE key = $1 AND state = 'done'", key)
	return all, done
}

func (f *fixture) chain(h message.HandlerFunc, inner ...message.HandlerMiddleware) message.HandlerFunc {
	for i := len(inner) - 1; i >= 0; i-- {
		h = inner[i](h)
	}
	return idempotency.Middleware(idempotency.Options{Store: f.store, Group: "g", Lease: 10 * time.Second})(h)
}

func newMsg(id string) *message.Message {
	msg := message.NewMessage(id, nil)
	msg.SetContext(transports.WithDeliveryInfo(context.Background(), &transports.DeliveryInfo{Attempt: 1}))
	return msg
}

// TestHandlerFailureLeavesNeitherRow: the handler writes a row and fails:
// neither its row nor the dedup row exists; the retry succeeds: both exist;
// a duplicate changes nothing.
func TestHandlerFailureLeavesNeitherRow(t *testing.T) {
	f := newFixture(t)
	fail := true
	h := f.chain(func(msg *message.Message) ([]*message.Message, error) {
		if err := f.insert(msg, "effect"); err != nil {
			return nil, err
		}
		if fail {
			return nil, errors.New("handler fails after writing")
		}
		return nil, nil
	})
	if _, err := h(newMsg("ev-1")); err == nil {
		t.Fatal("want the handler's error")
	}
	if n := f.effectRows(t, "ev-1"); n != 0 {
		t.Fatalf("failed handler: %d effect rows, want 0", n)
	}
	if all, _ := f.dedupRows(t, "g:ev-1"); all != 0 {
		t.Fatalf("failed handler: %d dedup rows, want 0", all)
	}
	fail = false
	for range 3 {
		if _, err := h(newMsg("ev-1")); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.effectRows(t, "ev-1"); n != 1 {
		t.Fatalf("%d effect rows after success and two duplicates, want 1", n)
	}
	if _, done := f.dedupRows(t, "g:ev-1"); done != 1 {
		t.Fatalf("%d done rows, want 1", done)
	}
}

// TestIgnoredStatementErrorIsNotAcked: a handler that swallows a failed
// statement and returns nil must not have its event acknowledged, since
// PostgreSQL rolls the transaction back.
func TestIgnoredStatementErrorIsNotAcked(t *testing.T) {
	f := newFixture(t)
	h := f.chain(func(msg *message.Message) ([]*message.Message, error) {
		if err := f.insert(msg, "effect"); err != nil {
			return nil, err
		}
		_, _ = pgstore.Tx(msg.Context()).Exec(msg.Context(), "SELECT 1/0")
		return nil, nil
	})
	if _, err := h(newMsg("ev-1")); err == nil {
		t.Fatal("the event was acknowledged although its transaction could not commit")
	}
	if n := f.effectRows(t, "ev-1"); n != 0 {
		t.Fatalf("%d effect rows, want 0", n)
	}
	if all, _ := f.dedupRows(t, "g:ev-1"); all != 0 {
		t.Fatalf("%d dedup rows, want 0", all)
	}
}

// TestAttemptsRollBackFailedTry: with idempotency.Attempts inside the
// retry middleware, a failed in-process try (whether its error came from
// the database or not) leaves nothing in the transaction the next try
// commits.
func TestAttemptsRollBackFailedTry(t *testing.T) {
	f := newFixture(t)
	retry := middleware.Retry(middleware.RetryPolicy{Tries: 3, InitialInterval: time.Millisecond})
	var try atomic.Int32
	h := f.chain(func(msg *message.Message) ([]*message.Message, error) {
		n := try.Add(1)
		if err := f.insert(msg, fmt.Sprintf("try %d", n)); err != nil {
			return nil, err
		}
		switch n {
		case 1:
			return nil, errors.New("first try fails after writing")
		case 2:
			_, err := pgstore.Tx(msg.Context()).Exec(msg.Context(), "SELECT 1/0")
			return nil, err // the transaction is now in error until the savepoint rolls back
		}
		return nil, nil
	}, retry, idempotency.Attempts())
	if _, err := h(newMsg("ev-1")); err != nil {
		t.Fatalf("third try should succeed: %v", err)
	}
	var note string
	if err := f.pool.QueryRow(context.Background(), "SELECT string_agg(note, ',') FROM "+f.effects).Scan(&note); err != nil {
		t.Fatal(err)
	}
	if note != "try 3" {
		t.Fatalf("committed effects %q, want only the successful try's row", note)
	}
}

// TestConcurrentDuplicatesRunOnce delivers one event to several processes
// (each its own pool) at once, redelivering held copies until acknowledged.
func TestConcurrentDuplicatesRunOnce(t *testing.T) {
	f := newFixture(t)
	const procs = 4
	var runs atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range procs {
		s, err := idempotency.Open(context.Background(), withQuery(pgURL(), "table="+f.dedup+"&pool_max_conns=2"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		h := idempotency.Middleware(idempotency.Options{Store: s, Group: "g", Lease: 10 * time.Second})(
			func(msg *message.Message) ([]*message.Message, error) {
				runs.Add(1)
				return nil, f.insert(msg, "effect")
			})
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for range 2000 {
				_, err := h(newMsg("ev-race"))
				if err == nil {
					return
				}
				if !errors.Is(err, idempotency.ErrHeld) {
					t.Errorf("delivery: %v", err)
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
			t.Error("a copy was never acknowledged")
		}()
	}
	close(start)
	wg.Wait()
	if n := f.effectRows(t, "ev-race"); n != 1 || runs.Load() != 1 {
		t.Fatalf("%d effect rows, handler ran %d times; want 1 and 1", n, runs.Load())
	}
}

// TestTakeoverOfExpiredPlainLease: a committed lease row (Begin) that
// expired is taken over by the transactional path, and the late holder
// cannot commit.
func TestTakeoverOfExpiredPlainLease(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, late, err := f.store.Begin(ctx, "g:ev-1", 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	h := f.chain(func(msg *message.Message) ([]*message.Message, error) { return nil, f.insert(msg, "effect") })
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := h(newMsg("ev-1"))
		if err == nil {
			break
		}
		if !errors.Is(err, idempotency.ErrHeld) || time.Now().After(deadline) {
			t.Fatalf("delivery: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := f.store.Commit(ctx, late, time.Hour); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("late Commit = %v, want ErrLeaseLost", err)
	}
	if n := f.effectRows(t, "ev-1"); n != 1 {
		t.Fatalf("%d effect rows, want 1", n)
	}
}

func TestTxOutsideHandlerIsNil(t *testing.T) {
	if pgstore.Tx(context.Background()) != nil {
		t.Fatal("Tx of a plain context is not nil")
	}
	if _, ok := pgstore.TxFrom(context.Background()); ok {
		t.Fatal("TxFrom found a transaction in a plain context")
	}
}
