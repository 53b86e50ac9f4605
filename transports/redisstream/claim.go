package redisstream

import (
	"context"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
)

// claimLoop takes entries idle longer than AckTimeout from any consumer of
// the group (XAUTOCLAIM, counted as a delivery) every claim interval,
// starting at once, as long as the prio queue has room for them.
func (s *subscription) claimLoop() {
	defer s.producers.Done()
	t := time.NewTicker(s.claimEvery)
	defer t.Stop()
	for {
		s.claimIdle()
		select {
		case <-t.C:
		case <-s.readCtx.Done():
			return
		}
	}
}

func (s *subscription) claimIdle() {
	cursor := "0-0"
	for s.readCtx.Err() == nil {
		room := cap(s.prio) - len(s.prio)
		if room <= 0 {
			return
		}
		msgs, next, err := s.client.XAutoClaim(s.readCtx, &redis.XAutoClaimArgs{
			Stream: s.stream, Group: s.group, Consumer: s.consumer,
			MinIdle: s.ackTimeout, Start: cursor, Count: int64(room),
		}).Result()
		if err != nil {
			if s.readCtx.Err() == nil && !isNoGroup(err) {
				s.log.Warn("redisstream: claim idle entries failed", slog.Any("error", err))
			}
			return
		}
		if len(msgs) > 0 {
			counts := s.deliveryCounts(msgs)
			for _, xm := range msgs {
				if xm.Values == nil {
					s.acks.add(xm.ID) // deleted from the stream (Redis 6.2)
					continue
				}
				if !s.held.add(xm.ID, counts[xm.ID]) {
					continue // ours already: a keepalive came late
				}
				e, ok := s.admit(xm, counts[xm.ID])
				if !ok {
					s.held.drop(xm.ID)
					continue
				}
				s.log.Debug("redisstream: claimed idle entry", slog.String("id", xm.ID), slog.Int("attempt", e.info.Attempt))
				if !s.pushPrio(e) {
					return
				}
			}
		}
		if next == "0-0" || next == "" {
			return
		}
		cursor = next
	}
}

// deliveryCounts reads the delivery count of each claimed entry (XPENDING
// of each ID, pipelined).
func (s *subscription) deliveryCounts(msgs []redis.XMessage) map[string]int {
	pipe := s.client.Pipeline()
	cmds := make([]*redis.XPendingExtCmd, len(msgs))
	for i, xm := range msgs {
		cmds[i] = pipe.XPendingExt(s.readCtx, &redis.XPendingExtArgs{
			Stream: s.stream, Group: s.group, Start: xm.ID, End: xm.ID, Count: 1,
		})
	}
	_, _ = pipe.Exec(s.readCtx)
	counts := make(map[string]int, len(msgs))
	for i, c := range cmds {
		if p := c.Val(); len(p) == 1 {
			counts[msgs[i].ID] = int(p[0].RetryCount)
		}
	}
	return counts
}

// keepalive resets the idle time of every entry this subscription holds
// (XCLAIM ... JUSTID, which Redis does not count as a delivery) every
// AckTimeout/3, so that no other consumer claims an entry whose handler is
// still running, or that waits for its redelivery. Entries idle for less
// than half the period are skipped: ours were reset more recently, and an
// entry another consumer has just claimed is not taken back.
func (s *subscription) keepalive() {
	defer s.keeper.Done()
	t := time.NewTicker(s.keepEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.lifeCtx.Done():
			return
		}
		ids := s.held.ids()
		if len(ids) == 0 {
			continue
		}
		pipe := s.client.Pipeline()
		for chunk := range chunks(ids, 500) {
			pipe.XClaimJustID(s.lifeCtx, &redis.XClaimArgs{
				Stream: s.stream, Group: s.group, Consumer: s.consumer,
				MinIdle: s.keepEvery / 2, Messages: chunk,
			})
		}
		if _, err := pipe.Exec(s.lifeCtx); err != nil && s.lifeCtx.Err() == nil {
			s.log.Warn("redisstream: keep claims alive failed", slog.Any("error", err))
		}
	}
}

// release makes the entries held but not handed out claimable by the
// group: buffered ones at once, with their delivery count set back (they
// never reached a handler), delayed ones when their delay ends (XCLAIM ...
// IDLE ms RETRYCOUNT n JUSTID). They stay in the pending list of this
// consumer, so a restart with the same name reads them first.
func (s *subscription) release() {
	held := s.held.snapshot()
	if len(held) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), defaultReleaseTimeout)
	defer cancel()
	now := time.Now()
	pipe := s.client.Pipeline()
	n := 0
	for id, h := range held {
		var idle time.Duration
		count := h.attempt
		switch h.state {
		case handedOut:
			continue
		case buffered:
			idle, count = s.ackTimeout, h.attempt-1
		case delayed:
			idle = max(s.ackTimeout-h.due.Sub(now), 0)
		}
		pipe.Do(ctx, "XCLAIM", s.stream, s.group, s.consumer, 0, id,
			"IDLE", idle.Milliseconds(), "RETRYCOUNT", max(count, 0), "JUSTID")
		n++
	}
	if n == 0 {
		return
	}
	if _, err := pipe.Exec(ctx); err != nil {
		s.log.Warn("redisstream: release unhandled entries failed; they return after AckTimeout", slog.Any("error", err))
	}
}

// chunks splits ids into slices of at most n.
func chunks(ids []string, n int) func(yield func([]string) bool) {
	return func(yield func([]string) bool) {
		for len(ids) > 0 {
			k := min(n, len(ids))
			if !yield(ids[:k]) {
				return
			}
			ids = ids[k:]
		}
	}
}
