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

// A refresh under way when a subscription closes does not set its key
// again: refreshes and removals take turns.
func TestLivenessRemoveDuringRefreshes(t *testing.T) {
	tr := openTransport(t, testURL(t, ""))
	ctx := context.Background()
	l := newLiveness(tr.client, tr.log)
	l.every = time.Millisecond
	defer l.close()
	prefix := tr.liveKeyPrefix("svc-churn")
	for range 20 {
		k := l.add(ctx, prefix, "orders.archived", "bg")
		t.Cleanup(func() { l.remove(k) })
	}
	var removed []string
	for range 300 {
		k := l.add(ctx, prefix, "orders.archived", "p1")
		l.remove(k)
		removed = append(removed, k)
	}
	l.close() // waits for a refresh under way
	n, err := tr.client.Exists(ctx, removed...).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d removed liveness keys set again by a refresh", n)
	}
}
