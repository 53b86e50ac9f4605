package engine

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/driver"
)

// reader is the state of reading, shared by the slots: a free slot that
// finds nothing queued becomes the reader (one at a time) and reads for
// every free slot. It reads own pending entries first (at start and after
// any broken read), claims idle entries when due, new entries otherwise;
// the driver's reads never run concurrently.
type reader struct {
	mu sync.Mutex // held by the slot that reads
	// list is held for writing by a read of the pending list (own
	// pending, claims) and for reading by a read of new entries: on a
	// driver with ConcurrentReceive, slots read new entries alongside
	// the reader (readAlongside), never during a read of the list, whose
	// snapshot could name an entry a read alongside just took and not yet
	// admitted.
	list sync.RWMutex
	// broken is set by a read alongside that failed: the reader reads
	// own pending again, as after its own broken read.
	broken        atomic.Bool
	pending       bool // own pending entries are to be read
	pendingCursor string
	claimCursor   string
	nextClaim     time.Time
	// pendingAgain is when own pending is read once more after a broken
	// read: a dead connection may still have taken entries for a moment
	// after the read failed.
	pendingAgain time.Time
	bo           backoff
	// The hand-out rate a read ahead is sized by (aheadBudget).
	rateAt     time.Time
	rateHanded int64
	perSec     float64
}

// rateEvery is the shortest span over which aheadBudget measures the
// hand-out rate.
const rateEvery = 10 * time.Millisecond

// aheadBudget is how many entries a read may take ahead of the free
// slots: as many as the slots hand out within horizon at their recent
// rate (handed is the count of hand-outs so far), so that entries read
// ahead wait briefly, and slow handlers (a rate of a few per second)
// read nothing ahead: their entries stay in the broker for the other
// members of the group. A negative horizon sets no bound.
func (r *reader) aheadBudget(now time.Time, handed int64, horizon time.Duration) int {
	if horizon < 0 {
		return math.MaxInt
	}
	if r.rateAt.IsZero() {
		r.rateAt, r.rateHanded = now, handed
		return 0
	}
	if dt := now.Sub(r.rateAt); dt >= rateEvery {
		inst := float64(handed-r.rateHanded) / dt.Seconds()
		r.perSec = (r.perSec + inst) / 2
		r.rateAt, r.rateHanded = now, handed
	}
	return int(r.perSec * horizon.Seconds())
}

// pendingAgainAfter is how long after a broken read the own pending
// entries are read a second time.
const pendingAgainAfter = time.Second

// afterBrokenRead makes the next reads read own pending first, as at
// start, and once more pendingAgainAfter later: entries a broken read took
// may be pending for this member (docs/transports.md, semantics item 12).
func (r *reader) afterBrokenRead(caps driver.Capabilities, now time.Time) {
	r.pending, r.pendingCursor = caps.PendingList, ""
	if caps.PendingList {
		r.pendingAgain = now.Add(pendingAgainAfter)
	}
}

// readOnce reads once for the free slots and queues what it read but the
// oldest entry, which it returns for the calling slot to hand out itself
// (no hand-off to another goroutine). It reports whether it read (false:
// no slot was free, the caller waits for the queue) and false once reading
// stopped.
func (s *subscription) readOnce() (own *entry, read, ok bool) {
	r := &s.rd
	n, ok := s.takeTokens()
	if !ok || n == 0 {
		return nil, false, ok
	}
	var (
		msgs []*driver.Message
		err  error
		what string
	)
	now := time.Now()
	if r.broken.Swap(false) {
		r.afterBrokenRead(s.caps, now)
	}
	if !r.pendingAgain.IsZero() && !now.Before(r.pendingAgain) {
		r.pendingAgain = time.Time{}
		r.pending, r.pendingCursor = s.caps.PendingList, ""
	}
	claimDue := s.caps.PendingList && !now.Before(r.nextClaim)
	fresh := !r.pending && !claimDue // a read of new entries (the default case below)
	if fresh {
		r.list.RLock()
	} else {
		r.list.Lock()
	}
	switch {
	case r.pending:
		what = "read own pending entries"
		s.listReadStarts()
		msgs, r.pendingCursor, err = s.d.Pending(s.readCtx, r.pendingCursor, n)
		if err == nil && r.pendingCursor == "" {
			r.pending = false
		}
	case claimDue:
		what = "claim idle entries"
		s.listReadStarts()
		msgs, r.claimCursor, err = s.d.Claim(s.readCtx, s.cfg.AckTimeout, r.claimCursor, n)
		if err != nil {
			r.claimCursor = ""
		}
		if err != nil || r.claimCursor == "" {
			r.nextClaim = time.Now().Add(s.opts.ClaimInterval)
			// Own pending entries this subscription does not hold (a read
			// whose reply a dying connection lost after the re-reads of a
			// broken read) are read again with every claim pass.
			if err == nil {
				r.pending, r.pendingCursor = true, ""
			}
		}
	default:
		what = "read"
		wait := s.opts.ReceiveWait
		if s.caps.PendingList {
			wait = min(wait, r.nextClaim.Sub(now))
			if !r.pendingAgain.IsZero() {
				wait = min(wait, r.pendingAgain.Sub(now))
			}
		}
		msgs, err = s.receive(n, true, max(wait, time.Millisecond))
	}
	own, used := s.admit(msgs, what == "read")
	if fresh {
		r.list.RUnlock()
	} else {
		r.list.Unlock()
	}
	for range n - used {
		s.tokens <- struct{}{}
	}
	if err != nil {
		if own != nil {
			// Back in the queue for this slot or another: the slot wants
			// an entry again and one is queued, so the count admit took
			// the slot off by stands. Never blocks: it holds a token.
			s.queue <- own
			own = nil
		}
		if s.readCtx.Err() != nil || errors.Is(err, transports.ErrClosed) {
			return nil, true, false
		}
		s.log.Warn("engine: "+what+" failed; retrying", slog.Any("error", err))
		r.afterBrokenRead(s.caps, time.Now())
		return nil, true, r.bo.sleep(s.readCtx)
	}
	r.bo.reset()
	return own, true, true
}

// receive reads up to n new entries (n tokens taken); the scheduler may
// interrupt it to get a slot for a redelivery that came due, which is
// not an error. The context of the reads is made once and again only
// after an interruption.
//
// On a driver that reads ahead, the entries for the slots waiting now
// (idleSlots, checked under imu so that a redelivery the scheduler queued
// before this read registered is seen) are read counted, and, when
// mayAhead (the reader, which holds rd.mu), the rest of n up to
// aheadBudget uncounted. When the queue covers every waiting slot it
// reads nothing: the caller takes a queued entry.
func (s *subscription) receive(n int, mayAhead bool, wait time.Duration) ([]*driver.Message, error) {
	s.imu.Lock()
	if s.rctx == nil {
		s.rctx, s.interrupt = context.WithCancel(s.readCtx)
	}
	ctx := s.rctx
	ahead := 0
	if s.ahead != nil {
		idle := s.idleSlots()
		if idle < 1 {
			s.imu.Unlock()
			return nil, nil
		}
		free := min(n, idle)
		if mayAhead && n > free {
			ahead = min(n-free, s.rd.aheadBudget(time.Now(), s.handed.Load(), s.opts.ReadAheadHorizon))
		}
		n, s.readFree = free, free
	}
	s.receiving++
	s.imu.Unlock()
	var msgs []*driver.Message
	var err error
	if ahead > 0 {
		msgs, err = s.ahead.ReceiveAhead(ctx, n, ahead, wait)
	} else {
		msgs, err = s.d.Receive(ctx, n, wait)
	}
	s.imu.Lock()
	s.receiving--
	interrupted := ctx.Err() != nil && s.readCtx.Err() == nil
	if ctx.Err() != nil && s.rctx == ctx {
		s.rctx = nil
	}
	s.imu.Unlock()
	if err != nil && interrupted {
		err = nil
	}
	return msgs, err
}

// idleSlots is, on a driver that reads ahead, how many slots wait for an
// entry that nothing queued covers: the slots that want an entry from
// the read now. Entries read beyond them are read ahead.
func (s *subscription) idleSlots() int {
	return int(s.wanting.Load())
}

// interruptIfCounted interrupts, on a driver that reads ahead, a read in
// progress that counts more entries than slots still wait (a queued
// redelivery went to one): it starts again for those that do.
func (s *subscription) interruptIfCounted() {
	s.imu.Lock()
	if s.receiving > 0 && s.idleSlots() < s.readFree {
		s.interrupt()
	}
	s.imu.Unlock()
}

// interruptRead cancels the Receive in progress, if any.
func (s *subscription) interruptRead() {
	s.imu.Lock()
	if s.receiving > 0 {
		s.interrupt()
	}
	s.imu.Unlock()
}

// takeTokens takes every free slot, without waiting: none when every
// slot is busy or another reader took them (the caller then waits for the
// queue). It reports false once reading stopped.
func (s *subscription) takeTokens() (int, bool) {
	n := 0
	for n < cap(s.tokens) {
		select {
		case <-s.tokens:
			n++
			continue
		default:
		}
		break
	}
	if s.readCtx.Err() != nil {
		for range n {
			s.tokens <- struct{}{}
		}
		return 0, false
	}
	return n, true
}

// next returns the next entry to hand out: a queued one, or one this slot
// reads when no other slot is reading. It returns nil once reading stopped.
//
// A slot that finds nothing queued and no other reader reads for every
// free slot and hands out the oldest entry itself; a slot that finds
// another reader, or no free slot, waits for the queue or for the reader
// to finish. A reader that finishes while slots are free wakes one waiting
// slot; every other place that frees a slot either reads next (a slot
// after an Ack or Nack) or wakes one (readerFree).
func (s *subscription) next() *entry {
	s.want(+1)
	e := s.nextEntry()
	if e == nil {
		s.want(-1) // stopped: leaves with none
	}
	return e
}

// nextEntry is next without the count of wanting slots: an entry it
// returns was taken off the count as it was queued or admitted.
func (s *subscription) nextEntry() *entry {
	alongside := false // read alongside since the last wait, to no avail
	for {
		select {
		case e := <-s.queue:
			return e
		default:
		}
		if s.rd.mu.TryLock() {
			e, read, ok := s.readOnce()
			s.rd.mu.Unlock()
			if len(s.tokens) > 0 {
				s.readerFree()
			}
			if !ok || e != nil {
				return e
			}
			if read {
				continue
			}
		} else if s.caps.ConcurrentReceive && !alongside {
			e, ok := s.readAlongside()
			if !ok || e != nil {
				return e
			}
			// Nothing there. The reader may have finished meanwhile
			// without seeing this slot's token, held for the read: try
			// once more to read (or find the queue) before waiting. A
			// reader still at work sees the token when it finishes.
			alongside = true
			continue
		}
		select {
		case e := <-s.queue:
			return e
		case <-s.readerIdle:
		case <-s.readCtx.Done():
			return nil
		}
		alongside = false
	}
}

// readerFree tells a slot waiting for the queue that it may read now.
func (s *subscription) readerFree() {
	select {
	case s.readerIdle <- struct{}{}:
	default:
	}
}

// readAlongside reads new entries for the calling slot alone while
// another slot reads (drivers with ConcurrentReceive), without waiting
// for any: it returns the entry it read, if any, and false once reading
// stopped. A read of the pending list excludes it (reader.list), and a
// failed one is left to the reader, which reads own pending again.
func (s *subscription) readAlongside() (*entry, bool) {
	select {
	case <-s.tokens:
	default:
		return nil, true // no slot free: the reader read for this one
	}
	r := &s.rd
	if !r.list.TryRLock() {
		s.tokens <- struct{}{}
		return nil, true
	}
	if s.readCtx.Err() != nil {
		r.list.RUnlock()
		s.tokens <- struct{}{}
		return nil, false
	}
	msgs, err := s.receive(1, false, 0)
	own, used := s.admit(msgs, true)
	r.list.RUnlock()
	if used == 0 {
		s.tokens <- struct{}{}
	}
	if err != nil {
		if s.readCtx.Err() != nil || errors.Is(err, transports.ErrClosed) {
			if own != nil {
				s.giveBack(own)
				s.want(+1) // admit took the slot off; next() does as it leaves with none
			}
			return nil, false
		}
		r.broken.Store(true)
	}
	return own, true
}
