package memory

import (
	"container/heap"
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
)

var _ transports.Scheduler = (*Transport)(nil)

// schedule is the broker's set of events waiting for their due time: a
// heap ordered by due time (then by arrival) and an index by event ID.
// One timer, armed for the earliest due time, moves what is due into the
// streams; it runs only while something waits. Guarded by Broker.mu.
type schedule struct {
	byID    map[string]*waiting
	due     dueHeap
	seq     uint64
	timer   *time.Timer
	timerAt time.Time // when timer fires; zero when it is not armed
	closed  bool
}

// waiting is one scheduled event.
type waiting struct {
	id    string
	topic string
	at    time.Time
	seq   uint64
	msg   *message.Message
	index int // in the heap
}

type dueHeap []*waiting

func (h dueHeap) Len() int { return len(h) }
func (h dueHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *dueHeap) Push(x any) {
	w := x.(*waiting)
	w.index = len(*h)
	*h = append(*h, w)
}
func (h *dueHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	w.index = -1
	return w
}

// Schedule implements transports.Scheduler: the event waits in the broker
// until due, then is appended to the stream of topic.
func (t *Transport) Schedule(_ context.Context, topic string, due time.Time, msg *message.Message) error {
	if t.subs.Closed() {
		return transports.ErrClosed
	}
	if topic == "" {
		return fmt.Errorf("memory: empty topic")
	}
	return t.broker.schedule(topic, due, msg)
}

// CancelScheduled implements transports.Scheduler.
func (t *Transport) CancelScheduled(_ context.Context, id string) error {
	if t.subs.Closed() {
		return transports.ErrClosed
	}
	return t.broker.cancelScheduled(id)
}

// Scheduled implements transports.Scheduler.
func (t *Transport) Scheduled(context.Context) ([]transports.ScheduledInfo, error) {
	return t.broker.Scheduled(), nil
}

// schedule keeps a copy of msg until due; a due time already passed is
// appended at once.
func (b *Broker) schedule(topic string, due time.Time, msg *message.Message) error {
	now := b.now()
	if at, err := transports.DueNow(now, due); err != nil || at {
		if err != nil {
			return err
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.sched.closed {
			return transports.ErrClosed
		}
		b.appendLocked(topic, []stored{store(msg)})
		return nil
	}
	w := &waiting{id: msg.UUID, topic: topic, at: due, msg: store(msg).message()}
	b.mu.Lock()
	defer b.mu.Unlock()
	s := &b.sched
	if s.closed {
		return transports.ErrClosed
	}
	if s.byID == nil {
		s.byID = map[string]*waiting{}
	}
	if old := s.byID[w.id]; old != nil {
		heap.Remove(&s.due, old.index)
	}
	s.seq++
	w.seq = s.seq
	s.byID[w.id] = w
	heap.Push(&s.due, w)
	b.armLocked(now)
	b.notifyLocked()
	return nil
}

// cancelScheduled drops a waiting event.
func (b *Broker) cancelScheduled(id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := &b.sched
	w := s.byID[id]
	if w == nil {
		return fmt.Errorf("memory: %w: %s", transports.ErrNotScheduled, id)
	}
	heap.Remove(&s.due, w.index)
	delete(s.byID, id)
	b.armLocked(b.now())
	b.notifyLocked()
	return nil
}

// Scheduled reports the waiting events per event name.
func (b *Broker) Scheduled() []transports.ScheduledInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	tally := make(transports.ScheduledTally)
	for _, w := range b.sched.due {
		tally.Add(w.topic, w.at)
	}
	return tally.List()
}

// armLocked sets the timer for the earliest due time, or stops it when
// nothing waits.
func (b *Broker) armLocked(now time.Time) {
	s := &b.sched
	if len(s.due) == 0 || s.closed {
		if s.timer != nil {
			s.timer.Stop()
		}
		s.timerAt = time.Time{}
		return
	}
	next := s.due[0].at
	if !s.timerAt.IsZero() && !next.Before(s.timerAt) {
		return // armed early enough already
	}
	s.timerAt = next
	wait := max(next.Sub(now), 0)
	if s.timer == nil {
		s.timer = time.AfterFunc(wait, b.moveDue)
		return
	}
	s.timer.Stop()
	s.timer.Reset(wait)
}

// moveDue appends every waiting event whose due time passed to its stream,
// in due order, then re-arms the timer for the next one.
func (b *Broker) moveDue() {
	b.mu.Lock()
	s := &b.sched
	s.timerAt = time.Time{}
	if s.closed {
		b.mu.Unlock()
		return
	}
	now := b.now()
	b.moveDueLocked(now)
	b.armLocked(now)
	b.mu.Unlock()
}

// moveDueLocked appends every waiting event due at or before until to its
// stream, in due order, and returns how many. Appended under the same lock
// that takes them off the schedule: at no instant is a due event in
// neither place (Idle would say so).
func (b *Broker) moveDueLocked(until time.Time) int {
	s := &b.sched
	n := 0
	for len(s.due) > 0 && !s.due[0].at.After(until) {
		w := heap.Pop(&s.due).(*waiting)
		delete(s.byID, w.id)
		b.appendLocked(w.topic, []stored{store(w.msg)})
		n++
	}
	return n
}

// MoveScheduled appends the events waiting with a due time at or before
// until to their streams now, in due order, as if the clock had reached
// until, and returns how many it moved. Tests use it (bustest's
// DeliverScheduled) rather than wait out a delay; an event keeps its
// metadata, the due time included.
func (b *Broker) MoveScheduled(until time.Time) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sched.closed {
		return 0
	}
	n := b.moveDueLocked(until)
	b.armLocked(b.now())
	return n
}

// dueLocked reports whether a scheduled event's due time passed while
// the timer has not moved it yet.
func (b *Broker) dueLocked() bool {
	return len(b.sched.due) > 0 && !b.sched.due[0].at.After(b.now())
}

// Close stops moving scheduled events: those still waiting are dropped
// with the broker. A transport opened on a private broker (memory://)
// closes it with itself; a named broker lives as long as the process.
func (b *Broker) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := &b.sched
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
	}
	s.timerAt = time.Time{}
	// Dropped: nothing moves them any more, and Idle must not wait for
	// them once they are due.
	s.due, s.byID = nil, nil
	b.notifyLocked()
}
