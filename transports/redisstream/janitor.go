package redisstream

import (
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
)

// delIdleConsumer deletes consumer ARGV[2] of group ARGV[1] on stream
// KEYS[1] only if it has no pending entry, atomically: a consumer that read
// an entry between the check and the delete would lose it otherwise
// (XGROUP DELCONSUMER drops the consumer's pending entries).
var delIdleConsumer = redis.NewScript(`
local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #p > 0 then return -1 end
return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
`)

// janitor deletes the consumers of the group that have been idle longer
// than Options.ConsumerIdle and hold no pending entry, at start and then
// every ConsumerIdle/2 (at most every 10 minutes).
func (s *subscription) janitor() {
	defer s.producers.Done()
	idle := s.t.opts.ConsumerIdle
	t := time.NewTicker(min(max(idle/2, time.Second), maxConsumerCheckPeriod))
	defer t.Stop()
	for {
		s.removeIdleConsumers(idle)
		select {
		case <-t.C:
		case <-s.readCtx.Done():
			return
		}
	}
}

func (s *subscription) removeIdleConsumers(idle time.Duration) {
	consumers, err := s.client.XInfoConsumers(s.readCtx, s.stream, s.group).Result()
	if err != nil {
		if s.readCtx.Err() == nil && !isNoGroup(err) {
			s.log.Warn("redisstream: list consumers failed", slog.Any("error", err))
		}
		return
	}
	for _, c := range consumers {
		if c.Name == s.consumer || c.Pending > 0 || c.Idle < idle {
			continue
		}
		n, err := delIdleConsumer.Run(s.readCtx, s.client, []string{s.stream}, s.group, c.Name).Int64()
		switch {
		case err != nil:
			if s.readCtx.Err() == nil {
				s.log.Warn("redisstream: delete idle consumer failed", slog.String("idle_consumer", c.Name), slog.Any("error", err))
			}
		case n >= 0:
			s.log.Info("redisstream: deleted idle consumer", slog.String("idle_consumer", c.Name), slog.Duration("idle", c.Idle))
		}
	}
}
