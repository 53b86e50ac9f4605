package redisstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/idempotency/redisstore"
	"github.com/busline/busline/transports/driver"
)

// readScript is XREADGROUP ... COUNT ARGV[3] STREAMS KEYS[1] > (never
// blocking) for a read that follows a busy one (more entries are likely
// waiting: redisSub.busy), with two more steps in the
// same round trip:
//
//   - the entries beyond the first ARGV[4] (read ahead of the free slots)
//     are given back their count (XCLAIM ... RETRYCOUNT 0 JUSTID), so that
//     a crash before their hand-out counts no attempt; the engine records
//     the attempt when it hands one out;
//   - when ARGV[5] is not empty, each entry's idempotency key, ARGV[5]
//     followed by the event ID, is claimed for ARGV[6] ms with the entry's
//     own token, ARGV[7] followed by i (SET ... NX PX;
//     redisstore.ClaimToken): the middleware's Begin adopts the claim
//     without a round trip of its own.
//
// It returns {entries, claimed}, claimed[i] 1 when the key of entry i was
// set. The claim keys are not declared in KEYS: it runs only on a
// single-node Redis, never on a Cluster.
var readScript = redis.NewScript(`
local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], '>')
if not r then return false end
local entries = r[1][2]
local free = tonumber(ARGV[4])
if #entries > free then
  local args = {KEYS[1], ARGV[1], ARGV[2], 0}
  for i = free + 1, #entries do args[#args+1] = entries[i][1] end
  args[#args+1] = 'RETRYCOUNT'
  args[#args+1] = 0
  args[#args+1] = 'JUSTID'
  redis.call('XCLAIM', unpack(args))
end
local claimed = {}
if ARGV[5] == '' then return {entries, claimed} end
for i, e in ipairs(entries) do
  local f = e[2]
  claimed[i] = 0
  if f then
    for j = 1, #f, 2 do
      if f[j] == '` + fieldUUID + `' then
        local id = f[j+1]
        if id ~= '' and redis.call('SET', ARGV[5] .. id, ARGV[7] .. i, 'NX', 'PX', ARGV[6]) then
          claimed[i] = 1
        end
        break
      end
    end
  end
end
return {entries, claimed}
`)

// scripted reports whether this subscription's reads that follow a full
// one run readScript: on its own connection, which never retries a read
// whose reply was lost (a retried script would take other entries and
// claims), while the server accepts the script. A Cluster has none.
func (s *redisSub) scripted() bool { return s.own && !s.noScript.Load() }

// claimPlan returns how this subscription's reads claim ahead for the
// transport's own idempotency store, when the bus's middleware announced
// this group to it.
func (s *redisSub) claimPlan() (redisstore.AheadPlan, bool) {
	st := s.t.dedup.Load()
	if st == nil {
		return redisstore.AheadPlan{}, false
	}
	return st.PlanAhead(s.group)
}

// receiveScripted reads up to free+ahead new entries without blocking
// (readScript): those beyond free come back uncounted, and the keys of
// all are claimed when the bus's idempotency middleware uses the
// transport's store.
func (s *redisSub) receiveScripted(ctx context.Context, free, ahead int) ([]*driver.Message, error) {
	n := min(free+ahead, s.batch)
	plan, claiming := s.claimPlan()
	var base string
	if claiming {
		base = plan.TokenBase()
	}
	args := []any{s.group, s.consumer, n, free, "", 0, base}
	if claiming {
		args[4], args[5] = plan.KeyPrefix, plan.Lease.Milliseconds()
	}
	if err := ctx.Err(); err != nil {
		return nil, err // interrupted before it was sent
	}
	start := time.Now()
	res, err := readScript.Run(ctx, s.rc, []string{s.stream}, args...).Slice()
	if err == redis.Nil {
		return nil, nil
	}
	if err != nil {
		return nil, s.scriptFailed(ctx, plan, base, n, start, err)
	}
	xms, claimed, err := parseScriptReply(res)
	if err != nil {
		if claiming {
			plan.Unknown(base, n)
		}
		s.markLost(start)
		return nil, fmt.Errorf("redisstream: XREADGROUP %s: %w", s.stream, err)
	}
	refs := make(map[string]redisstore.AheadClaim, len(xms))
	uncounted := make(map[string]bool, max(len(xms)-free, 0))
	for i, xm := range xms {
		if i >= free {
			uncounted[xm.ID] = true
		}
		if claiming && i < len(claimed) && claimed[i] {
			id, _ := xm.Values[fieldUUID].(string)
			refs[xm.ID] = plan.Claimed(id, redisstore.ClaimToken(base, i+1), start)
		}
	}
	out := s.messages(ctx, nil, xms, nil, true)
	for _, m := range out {
		if uncounted[m.AckID.(string)] {
			m.Recorded = false // Attempts 0: the count before the read
		}
	}
	if len(refs) == 0 {
		return out, nil
	}
	s.mu.Lock()
	if s.ahead == nil {
		s.ahead = map[string]redisstore.AheadClaim{}
	}
	for _, m := range out {
		id := m.AckID.(string)
		if r, ok := refs[id]; ok {
			s.ahead[id] = r
			delete(refs, id)
		}
	}
	s.mu.Unlock()
	// What messages skipped (replays for another group) was acknowledged.
	if len(refs) > 0 {
		s.releaseLogged(ctx, slices.Collect(maps.Values(refs)))
	}
	return out, nil
}

// scriptFailed handles an error of readScript. A cancelled context
// stops go-redis before it sends (it never abandons a reply it waits for);
// NOGROUP fails the script's first command, which applied nothing. Any
// other failure may have read entries (pending, counted at most once,
// never handed out) and claimed their keys for nobody: the read is lost,
// and its tokens stray. A server error that is not NOGROUP (an OOM on a
// SET, a server or proxy that refuses keys a script does not declare)
// would come back at every read: this subscription reads with plain
// XREADGROUP from now on (for its free slots only, claiming nothing
// ahead), and its connection, which is sound, is kept.
func (s *redisSub) scriptFailed(ctx context.Context, plan redisstore.AheadPlan, base string, n int, start time.Time, err error) error {
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return ctx.Err()
	}
	if strings.Contains(err.Error(), "NOGROUP") {
		// Before Redis 7.0 a script's error reads "ERR Error running
		// script ... NOGROUP ...".
		s.recreateGroup(ctx)
		return nil
	}
	if base != "" {
		plan.Unknown(base, n)
	}
	s.markLost(start)
	var serverErr redis.Error
	if errors.As(err, &serverErr) {
		s.noScript.Store(true)
		s.log.Warn("redisstream: reading ahead with a script failed on the server; this subscription reads with plain XREADGROUP, for its free slots, from now on", slog.Any("error", err))
	} else {
		s.dropReader()
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("redisstream: XREADGROUP %s: %w", s.stream, err)
}

// markLost records a read that broke after start: the entries it may have
// delivered are in the pending list, counted, and never reached the engine.
func (s *redisSub) markLost(start time.Time) {
	s.mu.Lock()
	s.lost = append(s.lost, window{start, time.Now()})
	s.mu.Unlock()
}

// settleAhead releases the claims taken ahead for ids that no Begin
// adopted (the store keeps the ones it adopted out of reach of Release),
// before their entries are acknowledged or given back. A claim whose
// release failed stays recorded and the error is returned: the engine
// retries the Ack or Nack, and with it the release, so that an entry is
// never given back to other consumers with its key still held.
func (s *redisSub) settleAhead(ctx context.Context, ids []driver.AckID) error {
	s.mu.Lock()
	if len(s.ahead) == 0 {
		s.mu.Unlock()
		return nil
	}
	var keys []string
	var refs []redisstore.AheadClaim
	for _, id := range ids {
		key, _ := id.(string)
		if r, ok := s.ahead[key]; ok {
			keys = append(keys, key)
			refs = append(refs, r)
		}
	}
	s.mu.Unlock()
	if len(refs) == 0 {
		return nil
	}
	errs := s.release(ctx, refs)
	var failed error
	s.mu.Lock()
	for i, err := range errs {
		if err != nil {
			failed = err
			continue
		}
		delete(s.ahead, keys[i])
	}
	s.mu.Unlock()
	if failed != nil {
		return fmt.Errorf("redisstream: release an idempotency claim taken by a read: %w", failed)
	}
	return nil
}

// releaseAllAhead releases every claim still taken ahead (Close).
func (s *redisSub) releaseAllAhead() {
	s.mu.Lock()
	refs := s.ahead
	s.ahead = nil
	s.mu.Unlock()
	if len(refs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.releaseLogged(ctx, slices.Collect(maps.Values(refs)))
}

// releaseLogged releases refs where nothing retries a failure: such a
// claim is held until its lease expires.
func (s *redisSub) releaseLogged(ctx context.Context, refs []redisstore.AheadClaim) {
	for i, err := range s.release(ctx, refs) {
		if err != nil {
			s.log.Debug("redisstream: release of an idempotency claim taken ahead failed; its lease expires",
				slog.String("key", refs[i].RedisKey), slog.Any("error", err))
		}
	}
}

// release gives up the claims refs no Begin adopted
// (redisstore.Store.Release) and returns each one's error.
func (s *redisSub) release(ctx context.Context, refs []redisstore.AheadClaim) []error {
	if st := s.t.dedup.Load(); st != nil {
		return st.Release(ctx, refs)
	}
	return make([]error, len(refs))
}

// parseScriptReply turns readScript's reply into stream entries and
// which of them had their key claimed.
func parseScriptReply(res []any) ([]redis.XMessage, []bool, error) {
	if len(res) != 2 {
		return nil, nil, fmt.Errorf("unexpected read reply of %d elements", len(res))
	}
	entries, _ := res[0].([]any)
	flags, _ := res[1].([]any)
	xms := make([]redis.XMessage, 0, len(entries))
	claimed := make([]bool, len(entries))
	for i, e := range entries {
		pair, ok := e.([]any)
		if !ok || len(pair) != 2 {
			return nil, nil, fmt.Errorf("unexpected stream entry %v", e)
		}
		id, _ := pair[0].(string)
		fields, _ := pair[1].([]any)
		values := make(map[string]any, len(fields)/2)
		for j := 0; j+1 < len(fields); j += 2 {
			k, _ := fields[j].(string)
			values[k] = fields[j+1]
		}
		xms = append(xms, redis.XMessage{ID: id, Values: values})
		if i < len(flags) {
			n, _ := flags[i].(int64)
			claimed[i] = n == 1
		}
	}
	return xms, claimed, nil
}
