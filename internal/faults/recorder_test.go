package faults

import (
	"context"
	"sync"
	"time"

	"github.com/busline/busline/bus"
)

// recorder is an in-process handler that records every call by event ID.
type recorder struct {
	work time.Duration

	mu    sync.Mutex
	calls map[string][]call
	n     int
}

type call struct {
	attempt int
	at      time.Time
}

func newRecorder(work time.Duration) *recorder {
	return &recorder{work: work, calls: map[string][]call{}}
}

func (r *recorder) handle(ctx context.Context, d bus.Delivery[tick]) error {
	if r.work > 0 {
		time.Sleep(r.work)
	}
	r.mu.Lock()
	r.calls[d.ID] = append(r.calls[d.ID], call{attempt: d.Attempt, at: time.Now()})
	r.n++
	r.mu.Unlock()
	return nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// missing returns how many of ids were never handled.
func (r *recorder) missing(ids []string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, id := range ids {
		if len(r.calls[id]) == 0 {
			n++
		}
	}
	return n
}

// snapshot returns a copy of the calls.
func (r *recorder) snapshot() map[string][]call {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[string][]call, len(r.calls))
	for k, v := range r.calls {
		m[k] = append([]call(nil), v...)
	}
	return m
}
