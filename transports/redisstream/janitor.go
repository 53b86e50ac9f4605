package redisstream

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// delIdleConsumer deletes consumer ARGV[2] of group ARGV[1] on stream
// KEYS[1] only if it has no pending entry, atomically: a consumer that read
// an entry between a check and the delete would lose it otherwise
// (XGROUP DELCONSUMER drops the consumer's pending entries). It returns -1
// when the consumer holds entries.
var delIdleConsumer = redis.NewScript(`
local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #p > 0 then return -1 end
return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
`)

// RemoveIdleConsumers deletes the consumers of group on the stream of topic
// that have been idle for at least idle and hold no pending entry, and
// returns their names. The pending check and the delete are one atomic
// script, so a consumer that holds entries is never deleted.
func (t *Transport) RemoveIdleConsumers(ctx context.Context, topic, group string, idle time.Duration) ([]string, error) {
	return removeIdleConsumers(ctx, t.client, t.StreamKey(topic), group, idle, "")
}

func removeIdleConsumers(ctx context.Context, client redis.UniversalClient, stream, group string, idle time.Duration, skip string) ([]string, error) {
	consumers, err := client.XInfoConsumers(ctx, stream, group).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstream: list consumers of %s on %s: %w", group, stream, err)
	}
	var removed []string
	for _, c := range consumers {
		if c.Name == skip || c.Pending > 0 || c.Idle < idle {
			continue
		}
		n, err := delIdleConsumer.Run(ctx, client, []string{stream}, group, c.Name).Int64()
		if err != nil {
			return removed, fmt.Errorf("redisstream: delete consumer %s of %s on %s: %w", c.Name, group, stream, err)
		}
		if n >= 0 {
			removed = append(removed, c.Name)
		}
	}
	return removed, nil
}
