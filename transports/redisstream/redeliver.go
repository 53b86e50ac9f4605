package redisstream

import (
	"container/heap"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// scheduler redelivers nacked entries when their delay ends. A nacked
// entry stays pending for this consumer (kept alive like any held entry);
// when it is due the scheduler claims it again with XCLAIM, which Redis
// counts as a delivery, so the attempt number stays durable, and queues it
// ahead of new entries.
type scheduler struct {
	s    *subscription
	mu   sync.Mutex
	due  dueHeap
	wake chan struct{}
}

func newScheduler(s *subscription) *scheduler {
	return &scheduler{s: s, wake: make(chan struct{}, 1)}
}

func (sc *scheduler) add(id string, at time.Time) {
	sc.mu.Lock()
	heap.Push(&sc.due, dueEntry{id: id, at: at})
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
		var next dueEntry
		have := sc.due.Len() > 0
		if have {
			next = sc.due[0]
		}
		sc.mu.Unlock()
		wait := time.Hour
		if have {
			wait = time.Until(next.at)
		}
		if wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-sc.wake:
				if !timer.Stop() {
					<-timer.C
				}
			case <-s.readCtx.Done():
				return
			}
			continue
		}
		sc.mu.Lock()
		heap.Pop(&sc.due)
		sc.mu.Unlock()
		if err := sc.redeliver(next.id); err != nil {
			if s.readCtx.Err() != nil {
				return
			}
			s.log.Warn("redisstream: redeliver nacked entry failed; retrying", slog.String("id", next.id), slog.Any("error", err))
			sc.mu.Lock()
			heap.Push(&sc.due, dueEntry{id: next.id, at: time.Now().Add(time.Second)})
			sc.mu.Unlock()
		}
	}
}

// redeliver claims id again (XCLAIM, counted as a delivery) pipelined with
// an XPENDING of it for the new delivery count, and queues it.
func (sc *scheduler) redeliver(id string) error {
	s := sc.s
	if !s.held.has(id) {
		return nil
	}
	pipe := s.client.Pipeline()
	claim := pipe.XClaim(s.readCtx, &redis.XClaimArgs{
		Stream: s.stream, Group: s.group, Consumer: s.consumer, MinIdle: 0, Messages: []string{id},
	})
	pending := pipe.XPendingExt(s.readCtx, &redis.XPendingExtArgs{
		Stream: s.stream, Group: s.group, Start: id, End: id, Count: 1,
	})
	_, _ = pipe.Exec(s.readCtx)
	msgs, err := claim.Result()
	if err != nil && err != redis.Nil {
		return err
	}
	if len(msgs) == 0 || msgs[0].Values == nil {
		// Acknowledged elsewhere, or trimmed from the stream.
		s.held.drop(id)
		if len(msgs) > 0 {
			s.acks.add(id)
		}
		return nil
	}
	attempt := 1
	if p := pending.Val(); len(p) == 1 {
		attempt = int(p[0].RetryCount)
	}
	e, ok := s.admit(msgs[0], attempt)
	if !ok {
		s.held.drop(id)
		return nil
	}
	s.held.requeue(id, attempt)
	s.pushPrio(e)
	return nil
}

type dueEntry struct {
	id string
	at time.Time
}

type dueHeap []dueEntry

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueEntry)) }
func (h *dueHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
