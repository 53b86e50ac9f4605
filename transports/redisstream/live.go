package redisstream

import (
	"context"
	"log/slog"
	"time"

	"github.com/busline/busline/transports"
)

// A subscription says it is alive in a key of its own, so that RemoveGroup
// sees a listener that has read nothing for long: Redis before 7.2 counts
// no empty read as a consumer's activity, and a quiet consumer looks as
// idle as a dead one.
const (
	// liveFor is how long a liveness key lasts without a refresh.
	liveFor = transports.GroupIdleFor
	// liveEvery is how often a reading subscription refreshes it.
	liveEvery = liveFor / 4
)

// liveKeyPrefix returns the prefix of the liveness keys of group's
// subscriptions: "{prefix}live:{group}/", then "{event}/{consumer}". No
// group, event or consumer name holds a '/'.
func (t *Transport) liveKeyPrefix(group string) string {
	return t.opts.Prefix + "live:" + group + "/"
}

// liveKey is the liveness key of this subscription.
func (s *redisSub) liveKey() string {
	return s.t.liveKeyPrefix(s.group) + s.topic + "/" + s.consumer
}

// markLive refreshes the subscription's liveness key when liveEvery has
// passed since the last refresh: one SET every 15 s per subscription,
// made before a read. A failed refresh is retried at the next read.
func (s *redisSub) markLive(ctx context.Context) {
	now := time.Now().UnixNano()
	if now < s.nextLive.Load() {
		return
	}
	if err := s.client.Set(ctx, s.liveKey(), s.stream, liveFor).Err(); err != nil {
		if ctx.Err() == nil {
			s.log.Debug("redisstream: liveness key not refreshed", slog.Any("error", err))
		}
		return
	}
	s.nextLive.Store(now + int64(liveEvery))
}

// dropLive deletes the liveness key at Close, so that the group of a
// stopped listener can be removed at once.
func (s *redisSub) dropLive() {
	if s.nextLive.Load() == 0 {
		return // never marked
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.client.Del(ctx, s.liveKey()).Err()
}
