package redisstream

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The keys of open subscriptions are refreshed while they are open, also
// when they read nothing (a listener whose handlers are all busy for
// long), and the refreshes stop at close.
func TestLivenessRefreshesOpenKeys(t *testing.T) {
	tr := openTransport(t, testURL(t, ""))
	ctx := context.Background()
	l := newLiveness(tr.client, tr.log)
	l.every = 20 * time.Millisecond
	key := l.add(ctx, tr.liveKeyPrefix("svc-busy"), "orders.archived", "p1")
	t.Cleanup(func() { tr.client.Del(ctx, key) })
	if err := tr.client.PExpire(ctx, key, 2*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the key refreshed to a minute", func() bool {
		return tr.client.PTTL(ctx, key).Val() > 30*time.Second
	})
	l.remove(key)
	if err := tr.client.Get(ctx, key).Err(); err != redis.Nil {
		t.Fatalf("GET after remove: %v; want no key", err)
	}
	l.close()
	select {
	case <-l.done:
	default:
		t.Fatal("the refresher still runs after close")
	}
}
