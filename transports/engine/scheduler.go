package engine

import (
	"container/heap"
	"sync"
	"time"
)

// scheduler hands nacked entries out again when their delay ends, on
// brokers with a pending list: the entry stays pending for this member
// meanwhile (its claim kept alive), and its next hand-out is recorded as
// the next attempt.
type scheduler struct {
	s    *subscription
	mu   sync.Mutex
	due  dueHeap
	wake chan struct{}
}

func newScheduler(s *subscription) *scheduler {
	return &scheduler{s: s, wake: make(chan struct{}, 1)}
}

func (sc *scheduler) add(e *entry) {
	sc.mu.Lock()
	heap.Push(&sc.due, e)
	sc.mu.Unlock()
	select {
	case sc.wake <- struct{}{}:
	default:
	}
}

func (sc *scheduler) run() {
	s := sc.s
	defer s.producers.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		sc.mu.Lock()
		var next *entry
		wait := time.Hour
		if sc.due.Len() > 0 {
			if wait = time.Until(sc.due[0].due); wait <= 0 {
				next = heap.Pop(&sc.due).(*entry)
			}
		}
		sc.mu.Unlock()
		if next == nil {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-sc.wake:
				timer.Stop()
			case <-s.readCtx.Done():
				return
			}
			continue
		}
		// Due: take a slot, interrupting a read that holds the free ones.
		// If reading stops first, the entry stays held as delayed and
		// Close returns it to the broker.
		if !sc.takeToken() {
			return
		}
		s.mu.Lock()
		ok := s.held[next.id] == next && next.is(delayed)
		if ok {
			next.set(queued)
		}
		s.mu.Unlock()
		if !ok {
			s.tokens <- struct{}{}
			s.readerFree()
			continue
		}
		s.queueEntry(next) // it holds a token
		if s.ahead != nil {
			// A token read ahead may have been free: a read in progress
			// may count an entry for the slot that takes this one (or
			// wait, as the one slot waiting, while this one is queued).
			s.interruptIfCounted()
		}
	}
}

// takeToken takes a free slot, interrupting a read that holds the free
// ones (again every few milliseconds: a read may start just after); false
// once reading stopped.
func (sc *scheduler) takeToken() bool {
	s := sc.s
	select {
	case <-s.tokens:
		return true
	default:
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		s.interruptRead()
		select {
		case <-s.tokens:
			return true
		case <-s.readCtx.Done():
			return false
		case <-t.C:
		}
	}
}

type dueHeap []*entry

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(*entry)) }
func (h *dueHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return x
}
