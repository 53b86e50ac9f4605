package engine

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/driver"
)

// settler sends settlements to the driver in batches: each flush is one
// Record, one Nack and one Ack call with everything settled since the
// previous flush, so settling costs no round trip per message under load
// and adds no delay when idle. Failed calls are retried with backoff;
// close makes a last flush with a fresh context.
type settler struct {
	s *subscription
	// recMu makes Record calls one at a time, so that a record made
	// before a hand-out (recordNow) is never overwritten by an older
	// batched one still on its way or retried after a failure. Batched
	// records are taken from the queue under it too.
	recMu   sync.Mutex
	mu      sync.Mutex
	acks    []driver.AckID
	nacks   []driver.Nack
	records []driver.Attempt
	// now holds the records made before a hand-out that wait for recMu:
	// the next holder sends them all in one Record call.
	now  []*nowRecord
	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

func newSettler(s *subscription) *settler {
	st := &settler{s: s, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go st.run()
	return st
}

// ack queues id. Only the first ack of a batch and the one that fills
// it wake the settler: it flushes the batch, or lingers for more.
func (st *settler) ack(id driver.AckID) {
	st.mu.Lock()
	st.acks = append(st.acks, id)
	n := len(st.acks)
	st.mu.Unlock()
	if n == 1 || n >= st.batch() {
		st.poke()
	}
}

func (st *settler) nack(n ...driver.Nack) {
	if len(n) == 0 {
		return
	}
	st.mu.Lock()
	st.nacks = append(st.nacks, n...)
	st.mu.Unlock()
	st.poke()
}

func (st *settler) record(a driver.Attempt) {
	st.mu.Lock()
	st.records = append(st.records, a)
	st.mu.Unlock()
	st.poke()
}

// nowRecord is one recordNow call waiting for its record to be sent.
type nowRecord struct {
	a    driver.Attempt
	done chan error // buffered: the sender never waits
}

// recordNow records a at once, after dropping the queued records of the
// same entry it supersedes (they name fewer attempts). Calls that arrive
// while a Record call is on its way are sent together in the next one:
// the slots re-reading a pending list at a restart, each recording its
// entry, make a few round trips rather than one each. The calls run with
// the subscription's read context.
func (st *settler) recordNow(a driver.Attempt) error {
	w := &nowRecord{a: a, done: make(chan error, 1)}
	st.mu.Lock()
	st.now = append(st.now, w)
	st.mu.Unlock()
	st.recMu.Lock()
	defer st.recMu.Unlock()
	select {
	case err := <-w.done: // sent with an earlier caller's batch
		return err
	default:
	}
	st.mu.Lock()
	batch := st.now
	st.now = nil
	attempts := make([]driver.Attempt, len(batch))
	for i, b := range batch {
		attempts[i] = b.a
	}
	st.records = slices.DeleteFunc(st.records, func(r driver.Attempt) bool {
		return slices.ContainsFunc(attempts, func(n driver.Attempt) bool {
			return r.AckID == n.AckID && r.Attempts <= n.Attempts
		})
	})
	st.mu.Unlock()
	err := st.s.d.Record(st.s.readCtx, highestRecords(attempts))
	for _, b := range batch {
		b.done <- err
	}
	return <-w.done
}

func (st *settler) poke() {
	select {
	case st.kick <- struct{}{}:
	default:
	}
}

// batch is how many acks a lingering settler waits for: half the
// driver's window, else half the concurrency.
func (st *settler) batch() int {
	if w := st.s.caps.AckWindow; w > 0 {
		return max(1, w/2)
	}
	return max(1, st.s.cfg.Concurrency/2)
}

// lingering reports whether acks may wait a little for more: the driver
// asked for it, other messages are in handlers (or the driver has a
// window, which holds acks regardless), no nack waits and fewer acks than
// a batch wait.
func (st *settler) lingering() bool {
	s := st.s
	if s.caps.AckLinger <= 0 || (s.caps.AckWindow <= 0 && s.inFlight.Load() == 0) {
		return false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.nacks) == 0 && len(st.acks) < st.batch()
}

func (st *settler) run() {
	defer close(st.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-st.stop
		cancel()
	}()
	var bo backoff
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for {
		select {
		case <-st.kick:
		case <-st.stop:
			st.final()
			return
		}
		if st.lingering() {
			linger.Reset(st.s.caps.AckLinger)
		hold:
			for {
				select {
				case <-linger.C:
					break hold
				case <-st.kick: // a full batch or a nack, say
					if !st.lingering() {
						linger.Stop()
						break hold
					}
				case <-st.stop:
					st.final()
					return
				}
			}
		}
		if err := st.flush(ctx); err != nil {
			if ctx.Err() == nil {
				st.s.log.Warn("engine: settle failed; retrying", slog.Any("error", err))
			}
			if !bo.sleep(ctx) {
				st.final()
				return
			}
			st.poke()
			continue
		}
		bo.reset()
	}
}

// highestRecords keeps one record per entry, its highest count: a record
// put back after a failed flush and a later one (a redelivery) may name
// the same entry, and the driver may send a batch in any order.
func highestRecords(records []driver.Attempt) []driver.Attempt {
	if len(records) < 2 {
		return records
	}
	at := make(map[driver.AckID]int, len(records))
	out := records[:0:0]
	for _, r := range records {
		if i, ok := at[r.AckID]; ok {
			out[i].Attempts = max(out[i].Attempts, r.Attempts)
			continue
		}
		at[r.AckID] = len(out)
		out = append(out, r)
	}
	return out
}

// flush sends what is queued: attempt records, nacks, then acks. What
// fails is put back, unless the driver is closed.
//
// The records are taken under recMu: a recordNow on its way when the
// flush began has dropped the older records of its entries first, so none
// is sent after it. Nacks and acks are taken first, so that they never
// wait for it; every record queued before them (at a hand-out, before
// its handler ran) is taken after them, and sent before them.
func (st *settler) flush(ctx context.Context) error {
	st.mu.Lock()
	nacks, acks := st.nacks, st.acks
	st.nacks, st.acks = nil, nil
	st.mu.Unlock()
	d := st.s.d
	var errs []error
	st.recMu.Lock()
	st.mu.Lock()
	records := highestRecords(st.records)
	st.records = nil
	st.mu.Unlock()
	if len(records) > 0 {
		if err := d.Record(ctx, records); err != nil && !errors.Is(err, transports.ErrClosed) {
			errs = append(errs, err)
			st.mu.Lock()
			st.records = append(records, st.records...)
			st.mu.Unlock()
		}
	}
	st.recMu.Unlock()
	if len(nacks) > 0 {
		st.s.keepMu.Lock() // after a keep-alive that may name them
		err := d.Nack(ctx, nacks)
		st.s.keepMu.Unlock()
		if err != nil && !errors.Is(err, transports.ErrClosed) {
			errs = append(errs, err)
			st.mu.Lock()
			st.nacks = append(nacks, st.nacks...)
			st.mu.Unlock()
		}
	}
	if len(acks) > 0 {
		if err := d.Ack(ctx, acks); err != nil && !errors.Is(err, transports.ErrClosed) {
			errs = append(errs, err)
			st.mu.Lock()
			st.acks = append(acks, st.acks...)
			st.mu.Unlock()
		} else {
			st.s.forget(acks)
		}
	}
	return errors.Join(errs...)
}

func (st *settler) empty() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.acks)+len(st.nacks)+len(st.records) == 0
}

// final flushes what is left, retrying until the flush timeout.
func (st *settler) final() {
	ctx, cancel := context.WithTimeout(context.Background(), st.s.opts.FlushTimeout)
	defer cancel()
	var bo backoff
	for !st.empty() {
		err := st.flush(ctx)
		if err == nil {
			continue
		}
		if !bo.sleep(ctx) {
			st.mu.Lock()
			n := len(st.acks) + len(st.nacks)
			st.mu.Unlock()
			st.s.log.Warn("engine: settlements lost at close; those events will be delivered again",
				slog.Int("entries", n), slog.Any("error", err))
			return
		}
	}
}

// close stops the settler after a last flush.
func (st *settler) close() {
	close(st.stop)
	<-st.done
}
