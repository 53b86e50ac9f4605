package redisstream

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/transports"
)

var _ transports.Scheduler = (*Transport)(nil)

// The schedule on Redis, under the transport's prefix (":" never appears
// in an event name, so these keys never meet a stream):
//
//	{prefix}schedule:index          sorted set: event name → earliest due time (ms)
//	{prefix}schedule:due:{event}    sorted set: event ID → due time (ms)
//	{prefix}schedule:entry:{id}     hash: the stream entry's fields (encode) + topic, due, maxlen
//	{prefix}schedule:lease          string: the token of the process moving due events (SET NX PX)
//	{prefix}schedule:wake           pub/sub channel: a nearer due time was scheduled
//
// Every change is one Lua script, so a crash leaves either the scheduled
// entry or the stream entry, never both or neither.
const (
	// scheduleLease is how long a process holds the right to move due
	// events without renewing it: the longest a crashed mover delays them.
	scheduleLease = 50 * time.Millisecond
	// scheduleRecheck bounds every sleep of the mover: it re-reads the
	// next due time at least this often, in case a wake-up message was
	// lost (a reconnection of its pub/sub connection).
	scheduleRecheck = 5 * time.Second
	// scheduleBatch is the most entries one script call moves.
	scheduleBatch = 256
	// scheduleRetry is how long an entry whose XADD failed waits before
	// the next attempt (it stays scheduled; the others move on).
	scheduleRetry = time.Second
)

// Fields of a scheduled entry's hash besides those of the stream entry.
const (
	schedFieldTopic  = "_busline_topic"
	schedFieldDue    = "_busline_due"
	schedFieldMaxLen = "_busline_maxlen"
)

// entryFields are the field names of a stream entry, in encode's order.
var entryFields = func() []any {
	values, err := encode(message.NewMessage("x", nil))
	if err != nil {
		panic(err)
	}
	var names []any
	for i := 0; i < len(values); i += 2 {
		names = append(names, values[i])
	}
	return names
}()

// reindexLua sets an event's score in the index to its earliest due time,
// or removes it when nothing of it waits.
const reindexLua = `
local function reindex(index, dueKey, topic)
  local f = redis.call('ZRANGE', dueKey, 0, 0, 'WITHSCORES')
  if #f == 0 then redis.call('ZREM', index, topic) else redis.call('ZADD', index, f[2], topic) end
end
`

// scheduleScript stores one entry (replacing an earlier one with the same
// ID) and publishes a wake-up when it is now the earliest.
// KEYS: index, due set of the topic, entry hash.
// ARGV: topic, id, due ms, maxlen, wake channel, due-set prefix, fields and values...
var scheduleScript = redis.NewScript(reindexLua + `
local old = redis.call('HGET', KEYS[3], '` + schedFieldTopic + `')
if old then
  local oldKey = ARGV[6] .. old
  redis.call('ZREM', oldKey, ARGV[2])
  reindex(KEYS[1], oldKey, old)
  redis.call('DEL', KEYS[3])
end
local before = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
redis.call('HSET', KEYS[3], '` + schedFieldTopic + `', ARGV[1], '` + schedFieldDue + `', ARGV[3], '` + schedFieldMaxLen + `', ARGV[4], unpack(ARGV, 7))
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[1], 'LT', ARGV[3], ARGV[1])
if #before == 0 or tonumber(ARGV[3]) < tonumber(before[2]) then
  redis.pcall('PUBLISH', ARGV[5], ARGV[3]) -- a wake-up only: an ACL without channels must not fail the schedule
end
return 1
`)

// moveScript takes or renews the lease, then moves up to a batch of due
// entries into their streams: XADD in the layout of a normal Publish,
// then the entry and its place in the due set are removed — all in one
// script. An entry whose XADD fails (its stream key holds another type)
// stays scheduled, retried after the retry delay, so that it does not
// hold up every entry behind it. It returns {moved, next due ms or -1,
// failed, last error}, or {-1, lease ms left} when another process holds
// the lease.
// KEYS: index, lease.
// ARGV: now ms, limit, token, lease ms, due-set prefix, entry prefix, stream prefix, retry ms, field names...
var moveScript = redis.NewScript(reindexLua + `
local cur = redis.call('GET', KEYS[2])
if not cur then
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
elseif cur ~= ARGV[3] then
  return {-1, redis.call('PTTL', KEYS[2])}
else
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
local limit = tonumber(ARGV[2])
local nf = #ARGV - 8
local moved, failed, ferr = 0, 0, ''
local retryAt = tonumber(ARGV[1]) + tonumber(ARGV[8])
for round = 1, limit do
  if moved >= limit then break end
  local first = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)
  if #first == 0 then break end
  local topic = first[1]
  local dueKey = ARGV[5] .. topic
  local ids = redis.call('ZRANGEBYSCORE', dueKey, '-inf', ARGV[1], 'LIMIT', 0, limit - moved)
  for _, id in ipairs(ids) do
    local ek = ARGV[6] .. id
    local v = redis.call('HMGET', ek, '` + schedFieldMaxLen + `', unpack(ARGV, 9))
    local done = true
    if v[1] then
      local args = {ARGV[7] .. topic}
      local ml = tonumber(v[1])
      if ml and ml > 0 then
        table.insert(args, 'MAXLEN'); table.insert(args, '~'); table.insert(args, v[1])
      end
      table.insert(args, '*')
      for i = 1, nf do
        table.insert(args, ARGV[8 + i]); table.insert(args, v[1 + i] or '')
      end
      local r = redis.pcall('XADD', unpack(args))
      if type(r) == 'table' and r.err then
        failed = failed + 1; ferr = id .. ': ' .. r.err
        redis.call('ZADD', dueKey, retryAt, id)
        done = false
      end
    end
    if done then
      redis.call('DEL', ek)
      redis.call('ZREM', dueKey, id)
    end
    moved = moved + 1
  end
  reindex(KEYS[1], dueKey, topic)
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #nxt == 0 then return {moved - failed, -1, failed, ferr} end
return {moved - failed, tonumber(nxt[2]), failed, ferr}
`)

// cancelScript removes one scheduled entry; 0 when it is not scheduled.
// KEYS: index. ARGV: id, entry prefix, due-set prefix.
var cancelScript = redis.NewScript(reindexLua + `
local ek = ARGV[2] .. ARGV[1]
local topic = redis.call('HGET', ek, '` + schedFieldTopic + `')
if not topic then return 0 end
local dueKey = ARGV[3] .. topic
redis.call('ZREM', dueKey, ARGV[1])
redis.call('DEL', ek)
reindex(KEYS[1], dueKey, topic)
return 1
`)

// releaseScript gives the lease up if it is still ours, and wakes the
// other movers so that one takes over at once.
// KEYS: lease. ARGV: token, wake channel.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.pcall('PUBLISH', ARGV[2], 'released')
end
return 1
`)

type scheduleKeys struct{ index, duePrefix, entryPrefix, lease, wake string }

func (t *Transport) scheduleKeys() scheduleKeys {
	p := t.opts.Prefix + "schedule:"
	return scheduleKeys{index: p + "index", duePrefix: p + "due:", entryPrefix: p + "entry:", lease: p + "lease", wake: p + "wake"}
}

// Schedule implements transports.Scheduler: the entry waits in Redis
// (see the keys above) until a mover appends it to the stream of topic.
func (t *Transport) Schedule(ctx context.Context, topic string, due time.Time, msg *message.Message) error {
	if t.subs.Closed() {
		return transports.ErrClosed
	}
	if now, err := transports.DueNow(time.Now(), due); err != nil || now {
		if err != nil {
			return err
		}
		return t.Publish(topic, msg)
	}
	if t.mover == nil {
		return fmt.Errorf("%w: redisstream: scheduled events on Redis Cluster (the move script spans keys of several slots)", transports.ErrUnsupported)
	}
	values, err := encode(msg)
	if err != nil {
		return err
	}
	k := t.scheduleKeys()
	args := make([]any, 0, 6+len(values))
	args = append(args, topic, msg.UUID, transports.DueMillis(due), t.opts.maxLen(topic), k.wake, k.duePrefix)
	args = append(args, values...)
	if err := scheduleScript.Run(ctx, t.client, []string{k.index, k.duePrefix + topic, k.entryPrefix + msg.UUID}, args...).Err(); err != nil {
		return fmt.Errorf("redisstream: schedule %s on %s: %w", msg.UUID, topic, err)
	}
	return nil
}

// CancelScheduled implements transports.Scheduler.
func (t *Transport) CancelScheduled(ctx context.Context, id string) error {
	if t.subs.Closed() {
		return transports.ErrClosed
	}
	k := t.scheduleKeys()
	n, err := cancelScript.Run(ctx, t.client, []string{k.index}, id, k.entryPrefix, k.duePrefix).Int64()
	if err != nil {
		return fmt.Errorf("redisstream: cancel scheduled %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("redisstream: %w: %s", transports.ErrNotScheduled, id)
	}
	return nil
}

// Scheduled implements transports.Scheduler with read-only commands.
func (t *Transport) Scheduled(ctx context.Context) ([]transports.ScheduledInfo, error) {
	k := t.scheduleKeys()
	events, err := t.client.ZRange(ctx, k.index, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstream: scheduled events: %w", err)
	}
	pipe := t.client.Pipeline()
	counts := make([]*redis.IntCmd, len(events))
	firsts := make([]*redis.ZSliceCmd, len(events))
	for i, e := range events {
		counts[i] = pipe.ZCard(ctx, k.duePrefix+e)
		firsts[i] = pipe.ZRangeWithScores(ctx, k.duePrefix+e, 0, 0)
	}
	if len(events) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("redisstream: scheduled events: %w", err)
		}
	}
	out := make([]transports.ScheduledInfo, 0, len(events))
	for i, e := range events {
		first := firsts[i].Val()
		if counts[i].Val() == 0 || len(first) == 0 {
			continue
		}
		out = append(out, transports.ScheduledInfo{Event: e, Count: counts[i].Val(), NextDue: time.UnixMilli(int64(first[0].Score))})
	}
	slices.SortFunc(out, func(a, b transports.ScheduledInfo) int { return strings.Compare(a.Event, b.Event) })
	return out, nil
}

// mover moves due entries of the transport's schedule into their streams.
// Every transport runs one; the lease makes one of them do the work at a
// time, and the script makes each move atomic whoever runs it. It sleeps
// until the next due time, woken early by the wake channel when a nearer
// one is scheduled: an idle mover sends one command per scheduleRecheck.
type mover struct {
	idle   bool // NoScheduleMover: nothing runs
	t      *Transport
	keys   scheduleKeys
	token  string
	cancel context.CancelFunc
	done   chan struct{}
}

// startMover starts the transport's mover; nil on Redis Cluster, where
// scheduling is not supported, and with Options.NoScheduleMover.
func startMover(t *Transport) *mover {
	if _, cluster := t.client.(*redis.ClusterClient); cluster {
		return nil
	}
	if t.opts.NoScheduleMover {
		return &mover{t: t, keys: t.scheduleKeys(), idle: true}
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &mover{t: t, keys: t.scheduleKeys(), token: rand.Text(), cancel: cancel, done: make(chan struct{})}
	go m.run(ctx)
	return m
}

// stop stops the mover and hands the lease over.
func (m *mover) stop() {
	if m == nil || m.idle {
		return
	}
	m.cancel()
	<-m.done
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = releaseScript.Run(ctx, m.t.client, []string{m.keys.lease}, m.token, m.keys.wake).Err()
}

func (m *mover) run(ctx context.Context) {
	defer close(m.done)
	ps := m.t.client.Subscribe(ctx, m.keys.wake)
	defer ps.Close()
	wake := ps.Channel()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	fails := 0
	for {
		wait, err := m.step(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			fails++
			wait = min(time.Second, 50*time.Millisecond<<min(fails, 5)) // back soon after Redis is
			m.t.log.Debug("redisstream: moving scheduled events failed", slog.Any("error", err), slog.Duration("retry_in", wait))
		} else {
			fails = 0
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// step moves what is due, when this process holds or takes the lease, and
// returns how long to sleep before the next look.
func (m *mover) step(ctx context.Context) (time.Duration, error) {
	first, err := m.t.client.ZRangeWithScores(ctx, m.keys.index, 0, 0).Result()
	if err != nil {
		return 0, err
	}
	if len(first) == 0 {
		return scheduleRecheck, nil
	}
	next := time.UnixMilli(int64(first[0].Score))
	args := []any{0, scheduleBatch, m.token, scheduleLease.Milliseconds(), m.keys.duePrefix, m.keys.entryPrefix, m.t.opts.Prefix, scheduleRetry.Milliseconds()}
	args = append(args, entryFields...)
	for {
		now := time.Now()
		if next.After(now) {
			return min(next.Sub(now), scheduleRecheck), nil
		}
		args[0] = now.UnixMilli()
		raw, err := moveScript.Run(ctx, m.t.client, []string{m.keys.index, m.keys.lease}, args...).Slice()
		if err != nil {
			return 0, err
		}
		res, err := moveResult(raw)
		if err != nil {
			return 0, err
		}
		if res.failed > 0 {
			m.t.log.Warn("redisstream: scheduled events could not be appended to their stream; they stay scheduled and are retried",
				slog.Int64("failed", res.failed), slog.String("last_error", res.lastErr), slog.Duration("retry_in", scheduleRetry))
		}
		switch moved, after := res.moved, res.after; {
		case moved < 0: // another process holds the lease
			return min(max(time.Duration(after)*time.Millisecond, 5*time.Millisecond), scheduleLease), nil
		case after < 0:
			return scheduleRecheck, nil
		default:
			next = time.UnixMilli(after)
		}
	}
}

// moveReply is what one run of moveScript reports.
type moveReply struct {
	moved, after, failed int64
	lastErr              string
}

// moveResult reads moveScript's reply: {moved, after} or {moved, after,
// failed, last error}.
func moveResult(raw []any) (moveReply, error) {
	var r moveReply
	if len(raw) != 2 && len(raw) != 4 {
		return r, fmt.Errorf("redisstream: move script returned %v", raw)
	}
	nums := []*int64{&r.moved, &r.after, &r.failed}
	for i := range min(len(raw), 3) {
		n, ok := raw[i].(int64)
		if !ok {
			return r, fmt.Errorf("redisstream: move script returned %v", raw)
		}
		*nums[i] = n
	}
	if len(raw) == 4 {
		r.lastErr, _ = raw[3].(string)
	}
	return r, nil
}
