package redisstream

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/idempotency/redisstore"
	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/driver"
)

// redisDriver is the Redis Streams driver of the delivery engine.
type redisDriver struct{ t *Transport }

var _ driver.Driver = redisDriver{}

// Open implements driver.Driver: XGROUP CREATE ... MKSTREAM at the
// position Since says; a group that exists is left as it is.
func (d redisDriver) Open(ctx context.Context, topic string, cfg transports.SubscriberConfig) (driver.Subscription, error) {
	t := d.t
	if t.subs.Closed() {
		return nil, transports.ErrClosed
	}
	stream := t.StreamKey(topic)
	if err := createGroup(ctx, t.client, stream, cfg.Group, startID(cfg.Since)); err != nil {
		return nil, err
	}
	s := &redisSub{
		t: t, client: t.client, rc: t.client,
		log:   t.log.With(slog.String("stream", stream), slog.String("group", cfg.Group), slog.String("consumer", cfg.Consumer)),
		topic: topic, stream: stream, group: cfg.Group, consumer: cfg.Consumer,
		ackTimeout: cfg.AckTimeout, batch: t.opts.Batch,
	}
	if s.batch <= 0 {
		s.batch = maxBatch
	}
	if t.newReader != nil {
		s.rc = t.newReader(func(id int64) { s.connID.Store(id) })
		if !t.readers.add(s.rc) {
			return nil, fmt.Errorf("redisstream: open %s: the connections were dropped: %w", stream, transports.ErrClosed)
		}
		s.own = true
		// Reads ahead leave their entries uncounted in readScript, which
		// runs only on the subscription's own connection.
		s.readAhead = min(t.opts.readAheadFor(cfg.Concurrency), s.batch)
	}
	s.liveKey = t.live.add(ctx, t.liveKeyPrefix(s.group), topic, s.consumer)
	return s, nil
}

// redisSub is one consumer of one group reading one stream. Its blocking
// reads run on a client of one connection whose client ID it knows, so
// that a cancelled Receive is interrupted with CLIENT UNBLOCK; on a
// Cluster they run on the shared client and end by Options.Block.
type redisSub struct {
	t        *Transport
	client   redis.UniversalClient
	rc       redis.UniversalClient // blocking reads
	own      bool                  // rc is this subscription's own client
	connID   atomic.Int64          // CLIENT ID of rc's connection
	blocking atomic.Bool           // a blocking XREADGROUP may be in progress
	log      *slog.Logger

	topic, stream, group, consumer string
	ackTimeout                     time.Duration
	batch                          int
	closed                         atomic.Bool

	mu sync.Mutex
	// lost is when reads broke: the entries such a read delivered are in
	// the pending list, counted once, and never reached the engine.
	lost []window
	// nextJanitor is when Claim next removes idle consumers.
	nextJanitor time.Time
	// ahead: the idempotency claims reads took that Ack or Nack may
	// have to release, by entry ID.
	ahead map[string]redisstore.AheadClaim

	// busy: the last read found all it asked for, or more than one
	// entry: more are likely waiting, and the next read runs readScript
	// first (receiveScripted). Otherwise (a read that found nothing, or
	// a lone entry for more than one free slot, as at low rates) the next
	// read blocks at once. With one free slot (Concurrency 1) every entry
	// read makes the next read run the script first.
	busy atomic.Bool
	// noScript: the server refused readScript; read without it.
	noScript atomic.Bool
	// readAhead is Capabilities.ReadAhead.
	readAhead int
	// liveKey is this subscription's liveness key (live.go).
	liveKey string
}

// window is the time span of one broken read.
type window struct{ from, to time.Time }

// lostSlack widens a broken read's window for the clocks of Redis and
// this process (entry delivery times are computed from XPENDING's idle).
const lostSlack = 2 * time.Second

// ackLinger is how long the engine may hold acks back, while other entries
// are in handlers, to send them in one XACK. With the Redis dedup store
// (measured when a handler waited on two store round trips, so others were
// in flight when one acked) an XACK carried 3.5 IDs on average without it
// and 5.1 with it, at concurrency 16; acks never delay a handler.
const ackLinger = 500 * time.Microsecond

func (s *redisSub) Capabilities() driver.Capabilities {
	return driver.Capabilities{PendingList: true, AckLinger: ackLinger, ReadAhead: s.readAhead}
}

// Receive implements driver.Subscription: XREADGROUP ... COUNT max BLOCK
// wait STREAMS stream >. Redis counts each entry's first delivery itself.
func (s *redisSub) Receive(ctx context.Context, n int, wait time.Duration) ([]*driver.Message, error) {
	return s.ReceiveAhead(ctx, n, 0, wait)
}

// ReceiveAhead implements driver.AheadReceiver. After a read that found
// all it asked for or more than one entry, a read first runs readScript:
// it does not block, reads
// free+ahead entries and leaves those beyond free uncounted (and claims
// their idempotency keys). When that finds nothing, or after a read that
// found nothing or a lone entry, it is a blocking XREADGROUP for the free
// slots only, which Redis counts.
func (s *redisSub) ReceiveAhead(ctx context.Context, free, ahead int, wait time.Duration) ([]*driver.Message, error) {
	if s.unusable() {
		return nil, transports.ErrClosed
	}
	block := wait
	if b := s.t.opts.Block; b > 0 {
		block = min(block, b)
	}
	block = max(block, time.Millisecond)
	free = max(min(free, s.batch), 1)
	if s.busy.Load() && s.scripted() {
		out, err := s.receiveScripted(ctx, free, ahead)
		if err != nil || len(out) > 0 {
			return out, err
		}
		s.busy.Store(false) // nothing waits after all
	}
	start := time.Now()
	s.blocking.Store(true)
	stop := s.interruptOn(ctx)
	streams, err := s.rc.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: s.group, Consumer: s.consumer, Streams: []string{s.stream, ">"},
		Count: int64(free), Block: block,
	}).Result()
	s.blocking.Store(false)
	stop()
	if err == redis.Nil {
		s.busy.Store(false)
		return nil, ctx.Err()
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if isNoGroup(err) {
			s.recreateGroup(ctx)
			return nil, nil
		}
		s.dropReader()
		s.markLost(start)
		return nil, fmt.Errorf("redisstream: XREADGROUP %s: %w", s.stream, err)
	}
	var out []*driver.Message
	read := 0
	for _, st := range streams {
		read += len(st.Messages)
		out = s.messages(ctx, out, st.Messages, nil, true)
	}
	s.busy.Store(read > 0 && (read >= free || read > 1))
	return out, nil
}

// interruptOn interrupts a blocking read with CLIENT UNBLOCK once ctx is
// done, again every few milliseconds until the read returned (the unblock
// may come before the read blocks). The returned stop waits for that.
func (s *redisSub) interruptOn(ctx context.Context) (stop func()) {
	if !s.own {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	unwatch := context.AfterFunc(ctx, func() {
		defer close(finished)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			if id := s.connID.Load(); id != 0 && s.blocking.Load() {
				uctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_ = s.client.ClientUnblock(uctx, id).Err()
				cancel()
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() {
		close(done)
		if !unwatch() {
			<-finished
		}
	}
}

// dropReader makes sure the connection of a broken read is gone on the
// server too (CLIENT KILL ID), so that it takes no entry after the own
// pending list is read again. A Redis that is down has dropped it anyway.
func (s *redisSub) dropReader() {
	id := s.connID.Swap(0)
	if !s.own || id == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.client.ClientKillByFilter(ctx, "ID", strconv.FormatInt(id, 10)).Err()
}

// recreateGroup creates the group again after Redis lost it (a restart
// without persistence, or the stream was deleted), from the start of the
// stream so that events fired since are not skipped.
func (s *redisSub) recreateGroup(ctx context.Context) {
	s.log.Warn("redisstream: consumer group is gone; creating it again from the start of the stream")
	if err := createGroup(ctx, s.client, s.stream, s.group, "0"); err != nil && ctx.Err() == nil {
		s.log.Warn("redisstream: create consumer group failed", slog.Any("error", err))
		sleepCtx(ctx, time.Second)
	}
}

// Pending implements driver.Subscription: XPENDING of this consumer after
// cursor, then XRANGE of each entry, which count no delivery. Entries
// trimmed from the stream while pending are acknowledged and skipped.
func (s *redisSub) Pending(ctx context.Context, cursor string, limit int) ([]*driver.Message, string, error) {
	if s.unusable() {
		return nil, "", transports.ErrClosed
	}
	start := "-"
	if cursor != "" {
		start = "(" + cursor
	}
	n := min(limit, s.batch)
	pend, err := s.client.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream: s.stream, Group: s.group, Start: start, End: "+", Count: int64(n), Consumer: s.consumer,
	}).Result()
	if err != nil && !isNoGroup(err) {
		return nil, "", fmt.Errorf("redisstream: XPENDING %s: %w", s.stream, err)
	}
	// A group that is gone (its stream was deleted) holds nothing pending
	// for this consumer; Receive creates it again.
	if len(pend) == 0 {
		s.mu.Lock()
		s.lost = nil // every entry a broken read took was read now
		s.mu.Unlock()
		return nil, "", nil
	}
	ids := make([]string, len(pend))
	counts := make(map[string]int, len(pend))
	now := time.Now()
	s.mu.Lock()
	for i, p := range pend {
		ids[i] = p.ID
		counts[p.ID] = int(p.RetryCount)
		if p.RetryCount == 1 && s.inLostRead(now.Add(-p.Idle)) {
			counts[p.ID] = 0 // delivered by a broken read: never handed out
		}
	}
	s.mu.Unlock()
	out, err := s.fetch(ctx, ids, counts)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(pend) == n {
		next = pend[len(pend)-1].ID
	}
	return out, next, nil
}

func (s *redisSub) inLostRead(at time.Time) bool {
	for _, w := range s.lost {
		if !at.Before(w.from.Add(-lostSlack)) && !at.After(w.to.Add(lostSlack)) {
			return true
		}
	}
	return false
}

// Claim implements driver.Subscription: XAUTOCLAIM ... JUSTID, which
// counts no delivery and, unlike XAUTOCLAIM with bodies on Redis 6.2, does
// not fail on entries deleted while pending; then XPENDING and XRANGE of
// each claimed entry. Deleted entries are acknowledged and skipped. When
// due it also removes idle consumers that hold nothing (Options.ConsumerIdle).
func (s *redisSub) Claim(ctx context.Context, minIdle time.Duration, cursor string, limit int) ([]*driver.Message, string, error) {
	if s.unusable() {
		return nil, "", transports.ErrClosed
	}
	if cursor == "" {
		cursor = "0-0"
		s.janitor(ctx)
	}
	ids, next, err := s.client.XAutoClaimJustID(ctx, &redis.XAutoClaimArgs{
		Stream: s.stream, Group: s.group, Consumer: s.consumer,
		MinIdle: minIdle, Start: cursor, Count: int64(min(limit, s.batch)),
	}).Result()
	if err != nil {
		if isNoGroup(err) {
			return nil, "", nil // Receive creates it again
		}
		return nil, "", fmt.Errorf("redisstream: XAUTOCLAIM %s: %w", s.stream, err)
	}
	if next == "0-0" {
		next = ""
	}
	if len(ids) == 0 {
		return nil, next, nil
	}
	pipe := s.client.Pipeline()
	cmds := make([]*redis.XPendingExtCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.XPendingExt(ctx, &redis.XPendingExtArgs{
			Stream: s.stream, Group: s.group, Start: id, End: id, Count: 1,
		})
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, "", fmt.Errorf("redisstream: XPENDING %s: %w", s.stream, err)
	}
	counts := make(map[string]int, len(ids))
	for i, c := range cmds {
		if p := c.Val(); len(p) == 1 {
			counts[ids[i]] = int(p[0].RetryCount)
		}
	}
	out, err := s.fetch(ctx, ids, counts)
	if err != nil {
		return nil, "", err
	}
	for _, m := range out {
		s.log.Debug("redisstream: claimed idle entry", slog.Any("id", m.AckID), slog.Int("attempts", m.Attempts))
	}
	return out, next, nil
}

// fetch reads the entries ids (XRANGE id id each, pipelined) and returns
// them as messages with the given attempt counts. Entries no longer in the
// stream are acknowledged and skipped.
func (s *redisSub) fetch(ctx context.Context, ids []string, counts map[string]int) ([]*driver.Message, error) {
	pipe := s.client.Pipeline()
	cmds := make([]*redis.XMessageSliceCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.XRange(ctx, s.stream, id, id)
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, fmt.Errorf("redisstream: XRANGE %s: %w", s.stream, err)
	}
	var found []redis.XMessage
	var gone []string
	for i, c := range cmds {
		if v := c.Val(); len(v) == 1 {
			found = append(found, v[0])
		} else {
			gone = append(gone, ids[i]) // trimmed or deleted while pending
		}
	}
	if len(gone) > 0 {
		if err := s.client.XAck(ctx, s.stream, s.group, gone...).Err(); err != nil {
			s.log.Warn("redisstream: acknowledge deleted entries failed", slog.Any("error", err))
		}
	}
	return s.messages(ctx, nil, found, counts, false), nil
}

// messages decodes entries into driver messages, appended to out. An
// entry replayed for another group is acknowledged and skipped.
func (s *redisSub) messages(ctx context.Context, out []*driver.Message, xms []redis.XMessage, counts map[string]int, recorded bool) []*driver.Message {
	var skip []string
	for _, xm := range xms {
		msg, err := decode(xm.ID, xm.Values)
		if err == nil {
			if g := msg.Metadata.Get(metaReplayGroup); g != "" && g != s.group {
				skip = append(skip, xm.ID)
				continue
			}
		}
		out = append(out, &driver.Message{
			AckID: xm.ID, Topic: s.topic, Message: msg, Poison: err,
			Attempts: counts[xm.ID], Recorded: recorded,
		})
	}
	if len(skip) > 0 {
		if err := s.client.XAck(ctx, s.stream, s.group, skip...).Err(); err != nil {
			s.log.Warn("redisstream: acknowledge entries replayed for another group failed", slog.Any("error", err))
		}
	}
	return out
}

// keepAlive resets the idle time of each entry KEYS[1] group ARGV[1] still
// gives to consumer ARGV[2] (XCLAIM ... JUSTID, no delivery counted); an
// entry another consumer claimed meanwhile is left to it.
var keepAlive = redis.NewScript(`
local n = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    n = n + 1
  end
end
return n
`)

// KeepAlive implements driver.Subscription.
func (s *redisSub) KeepAlive(ctx context.Context, ids []driver.AckID) error {
	if s.unusable() {
		return transports.ErrClosed
	}
	pipe := s.client.Pipeline()
	for chunk := range chunks(ids, 500) {
		args := make([]any, 0, 2+len(chunk))
		args = append(args, s.group, s.consumer)
		for _, id := range chunk {
			args = append(args, id)
		}
		keepAlive.Eval(ctx, pipe, []string{s.stream}, args...)
	}
	_, err := pipe.Exec(ctx)
	if err != nil {
		return fmt.Errorf("redisstream: keep claims alive on %s: %w", s.stream, err)
	}
	return nil
}

// Record implements driver.Subscription: XCLAIM ... RETRYCOUNT n JUSTID,
// one command for the entries of each count (entries read ahead are
// recorded as attempt 1 when they are handed out).
func (s *redisSub) Record(ctx context.Context, attempts []driver.Attempt) error {
	if s.unusable() {
		return transports.ErrClosed
	}
	byCount := map[int][]any{}
	for _, a := range attempts {
		byCount[a.Attempts] = append(byCount[a.Attempts], a.AckID)
	}
	pipe := s.client.Pipeline()
	for n, ids := range byCount {
		for chunk := range chunks(ids, ackChunk) {
			args := make([]any, 0, 9+len(chunk))
			args = append(args, "XCLAIM", s.stream, s.group, s.consumer, 0)
			args = append(args, chunk...)
			args = append(args, "RETRYCOUNT", n, "JUSTID")
			pipe.Do(ctx, args...)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return fmt.Errorf("redisstream: record attempts on %s: %w", s.stream, err)
	}
	return nil
}

// Ack implements driver.Subscription: XACK, chunked and pipelined.
func (s *redisSub) Ack(ctx context.Context, ids []driver.AckID) error {
	if s.unusable() {
		return transports.ErrClosed
	}
	if err := s.settleAhead(ctx, ids); err != nil {
		return err
	}
	xack := func(pipe redis.Pipeliner) {
		for chunk := range chunks(ids, ackChunk) {
			strs := make([]string, len(chunk))
			for i, id := range chunk {
				strs[i] = id.(string)
			}
			pipe.XAck(ctx, s.stream, s.group, strs...)
		}
	}
	if st := s.t.dedup.Load(); st != nil {
		// Behind the commits the dedup middleware deferred to the store.
		if err := st.Pipelined(ctx, xack); err != nil {
			return fmt.Errorf("redisstream: XACK %s: %w", s.stream, err)
		}
		return nil
	}
	pipe := s.client.Pipeline()
	xack(pipe)
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return fmt.Errorf("redisstream: XACK %s: %w", s.stream, err)
	}
	return nil
}

// Nack implements driver.Subscription: the entry stays in this consumer's
// pending list with the attempt count given, idle for AckTimeout-Delay so
// that another consumer may claim it once the delay ends
// (XCLAIM ... IDLE ms RETRYCOUNT n JUSTID).
func (s *redisSub) Nack(ctx context.Context, nacks []driver.Nack) error {
	if s.unusable() {
		return transports.ErrClosed
	}
	ids := make([]driver.AckID, len(nacks))
	for i, n := range nacks {
		ids[i] = n.AckID
	}
	if err := s.settleAhead(ctx, ids); err != nil {
		return err
	}
	pipe := s.client.Pipeline()
	for _, n := range nacks {
		idle := max(s.ackTimeout-n.Delay, 0)
		pipe.Do(ctx, "XCLAIM", s.stream, s.group, s.consumer, 0, n.AckID,
			"IDLE", idle.Milliseconds(), "RETRYCOUNT", max(n.Attempts, 0), "JUSTID")
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return fmt.Errorf("redisstream: return entries to %s: %w", s.stream, err)
	}
	return nil
}

// unusable reports whether the subscription is closed or its transport's
// connections were dropped: every call then fails with
// transports.ErrClosed, which the engine does not retry.
func (s *redisSub) unusable() bool { return s.closed.Load() || s.t.readers.dropped.Load() }

// Close implements driver.Subscription; pending entries stay pending.
func (s *redisSub) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.releaseAllAhead()
	s.t.live.remove(s.liveKey)
	if s.own {
		return s.t.readers.close(s.rc)
	}
	return nil
}

// janitor deletes the consumers of the group, other than this one, idle
// longer than Options.ConsumerIdle and holding no pending entry, at most
// every ConsumerIdle/2 (at most every 10 minutes).
func (s *redisSub) janitor(ctx context.Context) {
	idle := s.t.opts.ConsumerIdle
	if idle <= 0 {
		return
	}
	s.mu.Lock()
	due := !time.Now().Before(s.nextJanitor)
	if due {
		s.nextJanitor = time.Now().Add(min(max(idle/2, time.Second), maxConsumerCheckPeriod))
	}
	s.mu.Unlock()
	if !due {
		return
	}
	removed, err := removeIdleConsumers(ctx, s.client, s.stream, s.group, idle, s.consumer)
	if err != nil && ctx.Err() == nil && !isNoGroup(err) {
		s.log.Warn("redisstream: remove idle consumers failed", slog.Any("error", err))
	}
	for _, name := range removed {
		s.log.Info("redisstream: deleted idle consumer that held nothing", slog.String("idle_consumer", name))
	}
}

const ackChunk = 1000

// chunks splits s into slices of at most n.
func chunks[T any](s []T, n int) func(yield func([]T) bool) {
	return func(yield func([]T) bool) {
		for len(s) > 0 {
			k := min(n, len(s))
			if !yield(s[:k]) {
				return
			}
			s = s[k:]
		}
	}
}

// Driver returns the transport's driver for the delivery engine, for the
// driver tier of transports/transporttest and for tools.
func (t *Transport) Driver() driver.Driver { return redisDriver{t} }
