package idempotency

import (
	"context"
	"sync"
	"time"
)

// keeper extends, every half lease, the leases of the handlers that are
// still running, for a middleware whose store's leases expire
// (LeaseExtender). One timer serves every lease of the middleware: a
// handler costs a map entry, not a timer of its own (measured on the
// Redis bench, a timer per event cost about 1.8 µs of CPU per event).
type keeper struct {
	ext   LeaseExtender
	lease time.Duration // what an extension asks for
	every time.Duration // how long after its start (or last extension) a lease is extended

	mu    sync.Mutex
	held  map[*kept]struct{}
	timer *time.Timer
	next  time.Time // when the timer fires; zero when it is not armed
}

// kept is the lease of one running handler.
type kept struct {
	lease     Lease
	due       time.Time // its next extension
	extending bool      // an extension is on its way
}

func newKeeper(ext LeaseExtender, lease time.Duration) *keeper {
	return &keeper{ext: ext, lease: lease, every: max(lease/2, time.Millisecond), held: make(map[*kept]struct{})}
}

// start keeps l alive until stop. The first extension is due when half
// the lease is left: half a lease from now for a lease just taken, sooner
// for one taken earlier (a claim a transport's read took, which Begin
// adopted).
func (k *keeper) start(l Lease) *kept {
	due := time.Now().Add(k.every)
	if !l.Expires.IsZero() {
		due = minTime(due, l.Expires.Add(-(k.lease - k.every)))
	}
	e := &kept{lease: l, due: due}
	k.mu.Lock()
	k.held[e] = struct{}{}
	k.armFor(e.due)
	k.mu.Unlock()
	return e
}

// stop ends the extensions of e (one on its way may still be applied, as
// with a handler that returns while it is sent).
func (k *keeper) stop(e *kept) {
	k.mu.Lock()
	delete(k.held, e)
	k.mu.Unlock()
}

// armFor makes the timer fire by due. Called with k.mu held.
func (k *keeper) armFor(due time.Time) {
	if !k.next.IsZero() && !due.Before(k.next) {
		return
	}
	k.next = due
	d := max(time.Until(due), 0)
	if k.timer == nil {
		k.timer = time.AfterFunc(d, k.fire)
		return
	}
	k.timer.Reset(d)
}

// fire sends the extensions that are due, each on its own goroutine that
// ends with its call (bounded by every), and arms the timer for the next.
// A lease whose extension fails is not extended again.
func (k *keeper) fire() {
	now := time.Now()
	k.mu.Lock()
	k.next = time.Time{}
	var due []*kept
	for e := range k.held {
		switch {
		case e.extending:
		case !e.due.After(now):
			e.extending = true
			due = append(due, e)
		default:
			k.armFor(e.due)
		}
	}
	k.mu.Unlock()
	for _, e := range due {
		go k.extend(e)
	}
}

func (k *keeper) extend(e *kept) {
	ctx, cancel := context.WithTimeout(context.Background(), k.every)
	err := k.ext.Extend(ctx, e.lease, k.lease)
	cancel()
	k.mu.Lock()
	defer k.mu.Unlock()
	e.extending = false
	if _, running := k.held[e]; !running {
		return
	}
	if err != nil {
		delete(k.held, e) // as a lease lost: the handler finishes without it
		return
	}
	e.due = time.Now().Add(k.every)
	k.armFor(e.due)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
