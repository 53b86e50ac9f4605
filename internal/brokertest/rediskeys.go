package brokertest

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// DeleteRedisPrefix deletes every key of database 0 of the Redis at addr
// that starts with prefix (SCAN, then DEL 500 at a time): the clean-up of
// a test that kept its keys under a prefix of its own. Errors are logged,
// not fatal: the test's verdict is already made.
func DeleteRedisPrefix(t testing.TB, addr, prefix string) {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: 1, DialTimeout: time.Second})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Logf("cleanup of %s*: %v", prefix, err)
		return
	}
	for len(keys) > 0 {
		n := min(len(keys), 500)
		if err := c.Del(ctx, keys[:n]...).Err(); err != nil {
			t.Logf("cleanup of %s*: %v", prefix, err)
			return
		}
		keys = keys[n:]
	}
}
