package redisstream

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// reader reads the consumer's own pending entries, then new ones, into the
// ready queue. Its blocking reads run on a client of one connection whose
// client ID it knows, so that stopping can interrupt them with CLIENT
// UNBLOCK; on a Cluster they run on the shared client and end by timeout.
type reader struct {
	s        *subscription
	rc       redis.UniversalClient
	own      bool         // rc is this reader's own client
	connID   atomic.Int64 // CLIENT ID of rc's connection
	blocking atomic.Bool  // a blocking XREADGROUP may be in progress
	done     chan struct{}
}

func newReader(s *subscription) *reader {
	r := &reader{s: s, rc: s.client, done: make(chan struct{})}
	if s.t.newReader != nil {
		r.rc = s.t.newReader(func(id int64) { r.connID.Store(id) })
		r.own = true
	}
	return r
}

func (r *reader) run() {
	defer r.s.producers.Done()
	defer close(r.done)
	if r.readOwnPending() {
		r.readNew()
	}
}

// readOwnPending hands out this consumer's pending entries, oldest first
// (XREADGROUP ... ID 0, which Redis counts as a delivery), pipelined with an
// XPENDING of the same range for their delivery counts. It reports false
// when reading stopped.
func (r *reader) readOwnPending() bool {
	s := r.s
	cursor := "0"
	var bo backoff
	for {
		if !s.waitSpace() {
			return false
		}
		n := int64(s.batch - len(s.ready))
		start := "-"
		if cursor != "0" {
			start = "(" + cursor
		}
		pipe := r.rc.Pipeline()
		read := pipe.XReadGroup(s.readCtx, &redis.XReadGroupArgs{
			Group: s.group, Consumer: s.consumer, Streams: []string{s.stream, cursor}, Count: n, Block: -1,
		})
		pending := pipe.XPendingExt(s.readCtx, &redis.XPendingExtArgs{
			Stream: s.stream, Group: s.group, Start: start, End: "+", Count: n, Consumer: s.consumer,
		})
		_, _ = pipe.Exec(s.readCtx)
		streams, err := read.Result()
		if err == nil || err == redis.Nil {
			err = pending.Err()
		}
		if err != nil && err != redis.Nil {
			if s.readCtx.Err() != nil {
				return false
			}
			if isNoGroup(err) {
				r.recreateGroup()
				return true
			}
			s.log.Warn("redisstream: read own pending entries failed; retrying", slog.Any("error", err))
			if !bo.sleep(s.readCtx) {
				return false
			}
			continue
		}
		bo.reset()
		var msgs []redis.XMessage
		if len(streams) > 0 {
			msgs = streams[0].Messages
		}
		if len(msgs) == 0 {
			return true
		}
		counts := make(map[string]int, len(msgs))
		for _, p := range pending.Val() {
			counts[p.ID] = int(p.RetryCount)
		}
		for _, xm := range msgs {
			cursor = xm.ID
			r.enqueue(xm, counts[xm.ID])
		}
	}
}

// readNew reads new entries in batches (XREADGROUP ... >), blocking at most
// Options.Block per read while nothing comes.
func (r *reader) readNew() {
	s := r.s
	var bo backoff
	for {
		if !s.waitSpace() {
			return
		}
		n := int64(s.batch - len(s.ready))
		r.blocking.Store(true)
		if s.readCtx.Err() != nil {
			r.blocking.Store(false)
			return
		}
		streams, err := r.rc.XReadGroup(s.readCtx, &redis.XReadGroupArgs{
			Group: s.group, Consumer: s.consumer, Streams: []string{s.stream, ">"}, Count: n, Block: s.t.opts.Block,
		}).Result()
		r.blocking.Store(false)
		if err == redis.Nil {
			bo.reset()
			continue
		}
		if err != nil {
			if s.readCtx.Err() != nil {
				return
			}
			if isNoGroup(err) {
				r.recreateGroup()
				continue
			}
			s.log.Warn("redisstream: read failed; retrying", slog.Any("error", err))
			if !bo.sleep(s.readCtx) {
				return
			}
			continue
		}
		bo.reset()
		for _, st := range streams {
			for _, xm := range st.Messages {
				r.enqueue(xm, 1)
			}
		}
	}
}

// enqueue holds and queues one entry read for this consumer. An entry
// deleted from the stream (trimmed while pending) is acknowledged.
func (r *reader) enqueue(xm redis.XMessage, attempt int) {
	s := r.s
	if xm.Values == nil {
		s.acks.add(xm.ID)
		return
	}
	if !s.held.add(xm.ID, max(attempt, 1)) {
		return
	}
	e, ok := s.admit(xm, attempt)
	if !ok {
		s.held.drop(xm.ID)
		return
	}
	s.ready <- e // never blocks: only the reader fills ready, at most to its capacity
}

// recreateGroup creates the group again after Redis lost it (a restart
// without persistence, or the stream was deleted), from the start of the
// stream so that events fired since are not skipped.
func (r *reader) recreateGroup() {
	s := r.s
	s.log.Warn("redisstream: consumer group is gone; creating it again from the start of the stream")
	if err := createGroup(s.readCtx, s.client, s.stream, s.group, "0"); err != nil && s.readCtx.Err() == nil {
		s.log.Warn("redisstream: create consumer group failed", slog.Any("error", err))
		sleepCtx(s.readCtx, time.Second)
	}
}

// interruptOnStop waits for reading to stop, then interrupts a blocking
// read with CLIENT UNBLOCK until the reader has returned.
func (r *reader) interruptOnStop() {
	defer r.s.producers.Done()
	select {
	case <-r.done:
		return
	case <-r.s.readCtx.Done():
	}
	if !r.own {
		return
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if id := r.connID.Load(); id != 0 && r.blocking.Load() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = r.s.client.ClientUnblock(ctx, id).Err()
			cancel()
		}
		select {
		case <-r.done:
			return
		case <-t.C:
		}
	}
}

func (r *reader) close() {
	if r.own {
		_ = r.rc.Close()
	}
}
