package redisstream

import (
	"sync"
	"time"
)

// holdState is where an entry this consumer holds is.
type holdState int

const (
	// buffered: read or claimed, queued, not handed out yet.
	buffered holdState = iota
	// handedOut: handed out, neither acked nor nacked yet.
	handedOut
	// delayed: nacked, waiting for its redelivery time.
	delayed
)

type holding struct {
	state   holdState
	due     time.Time // delayed: when it is redelivered
	attempt int       // the delivery count Redis had when it was read or claimed
}

// holdings are the entries of the group's pending list that this
// subscription holds. The keepalive loop resets their idle time so that no
// other consumer claims them; Close releases the ones never handed out.
type holdings struct {
	mu sync.Mutex
	m  map[string]*holding
}

// add starts holding id as buffered. It reports false when id is held
// already (a claim that raced with a keepalive): the caller must not hand
// it out a second time.
func (h *holdings) add(id string, attempt int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.m[id]; ok {
		return false
	}
	h.m[id] = &holding{state: buffered, attempt: attempt}
	return true
}

func (h *holdings) set(id string, state holdState, due time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if x, ok := h.m[id]; ok {
		x.state, x.due = state, due
	}
}

func (h *holdings) drop(id string) {
	h.mu.Lock()
	delete(h.m, id)
	h.mu.Unlock()
}

func (h *holdings) has(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.m[id]
	return ok
}

// ids returns every held ID.
func (h *holdings) ids() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.m))
	for id := range h.m {
		out = append(out, id)
	}
	return out
}

// snapshot returns a copy of every holding.
func (h *holdings) snapshot() map[string]holding {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]holding, len(h.m))
	for id, x := range h.m {
		out[id] = *x
	}
	return out
}

// requeue marks a redelivered entry buffered again with its new delivery count.
func (h *holdings) requeue(id string, attempt int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if x, ok := h.m[id]; ok {
		x.state, x.attempt, x.due = buffered, attempt, time.Time{}
	}
}
