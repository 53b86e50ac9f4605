package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/idempotency"
	"github.com/busline/busline/idempotency/redisstore"
)

// A Pipelined call made after CommitDeferred sees the commit applied,
// however many callers share the pipelines: the ordering an ack sent
// through the store relies on.
func TestPipelinedAfterDeferredCommit(t *testing.T) {
	c := client(t)
	s := redisstore.New(c, redisstore.Options{Prefix: prefix(t, c), DeferCommits: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var settled atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for g := range 32 {
		wg.Go(func() {
			for i := range 20 {
				key := fmt.Sprintf("g:%d-%d", g, i)
				st, l, err := s.Begin(ctx, key, time.Minute)
				if err != nil || st != idempotency.Fresh {
					errs <- fmt.Errorf("Begin %s = %v, %v", key, st, err)
					return
				}
				if !s.CommitDeferred(l, time.Hour, func(err error) {
					if err != nil {
						errs <- fmt.Errorf("deferred commit of %s: %w", key, err)
					}
					settled.Add(1)
				}) {
					errs <- fmt.Errorf("CommitDeferred reported false")
					return
				}
				var get *redis.StringCmd
				if err := s.Pipelined(ctx, func(p redis.Pipeliner) { get = p.Get(ctx, s.RedisKey(key)) }); err != nil {
					errs <- fmt.Errorf("Pipelined: %w", err)
					return
				}
				if get.Val() != "done" {
					errs <- fmt.Errorf("after the deferred commit, %s = %q, want done", key, get.Val())
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := settled.Load(); n != 32*20 {
		t.Errorf("%d deferred commits settled, want %d", n, 32*20)
	}
}

// A deferred commit that fails holds back the Pipelined calls made after
// it, which send it again, until it is applied.
func TestDeferredCommitFailureHoldsPipelined(t *testing.T) {
	c := client(t)
	s := redisstore.New(c, redisstore.Options{Prefix: prefix(t, c), DeferCommits: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, l, err := s.Begin(ctx, "g:e", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	rkey := s.RedisKey(l.Key)
	// A key of another type makes the commit script fail (WRONGTYPE).
	c.Del(ctx, rkey)
	c.HSet(ctx, rkey, "f", "v")
	var results []error
	var mu sync.Mutex
	if !s.CommitDeferred(l, time.Hour, func(err error) { mu.Lock(); results = append(results, err); mu.Unlock() }) {
		t.Fatal("CommitDeferred reported false")
	}
	sent := false
	err = s.Pipelined(ctx, func(redis.Pipeliner) { sent = true })
	if err == nil || sent {
		t.Fatalf("Pipelined after a failed deferred commit = %v (sent %v), want an error and nothing sent", err, sent)
	}
	// Repaired: the next Pipelined call sends the commit first.
	c.Del(ctx, rkey)
	c.Set(ctx, rkey, l.Token, time.Minute)
	var get *redis.StringCmd
	if err := s.Pipelined(ctx, func(p redis.Pipeliner) { get = p.Get(ctx, rkey) }); err != nil {
		t.Fatalf("Pipelined once the commit can be applied: %v", err)
	}
	if get.Val() != "done" {
		t.Fatalf("key = %q after the commit was sent again, want done", get.Val())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(results) != 1 || results[0] != nil {
		t.Fatalf("done called with %v, want once with nil", results)
	}
}

// Without DeferCommits the store commits only synchronously.
func TestCommitDeferredOff(t *testing.T) {
	c := client(t)
	s := redisstore.New(c, redisstore.Options{Prefix: prefix(t, c)})
	if s.CommitDeferred(idempotency.Lease{Key: "g:e", Token: "t"}, time.Hour, func(error) { t.Error("done called") }) {
		t.Fatal("CommitDeferred reported true without Options.DeferCommits")
	}
}

// Deferred commits sent together (one script call for a pipeline's
// commits) each get their own result: a key another holder took is left
// to it and its commit reports the lease lost.
func TestDeferredCommitsTogether(t *testing.T) {
	c := client(t)
	s := redisstore.New(c, redisstore.Options{Prefix: prefix(t, c), DeferCommits: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 64
	leases := make([]idempotency.Lease, n)
	for i := range n {
		key := fmt.Sprintf("k%d", i)
		st, l, err := s.Begin(ctx, key, time.Minute)
		if err != nil || st != idempotency.Fresh {
			t.Fatalf("Begin %s = %v, %v", key, st, err)
		}
		leases[i] = l
		if i%3 == 0 { // taken over by another holder
			if err := c.Set(ctx, s.RedisKey(key), "other", time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	errs := commitTogether(ctx, t, s, leases)
	for i, err := range errs {
		val := c.Get(ctx, s.RedisKey(leases[i].Key)).Val()
		if i%3 == 0 {
			if !errors.Is(err, idempotency.ErrLeaseLost) || val != "other" {
				t.Errorf("commit of a key taken over: %v, value %q; want ErrLeaseLost, other", err, val)
			}
			continue
		}
		if err != nil || val != "done" {
			t.Errorf("commit %d: %v, value %q; want nil, done", i, err, val)
		}
	}
}

// commitTogether defers the commits of leases while a Pipelined call holds
// the store's pipeline, so that they leave in one pipeline, and returns
// their results once they are applied.
func commitTogether(ctx context.Context, t *testing.T, s *redisstore.Store, leases []idempotency.Lease) []error {
	t.Helper()
	entered, gate := make(chan struct{}), make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- s.Pipelined(ctx, func(redis.Pipeliner) {
			close(entered)
			<-gate
		})
	}()
	<-entered
	results := make([]chan error, len(leases))
	for i, l := range leases {
		results[i] = make(chan error, 1)
		if !s.CommitDeferred(l, time.Hour, func(err error) { results[i] <- err }) {
			t.Fatal("CommitDeferred reported false")
		}
	}
	close(gate)
	if err := <-held; err != nil {
		t.Fatalf("Pipelined: %v", err)
	}
	if err := s.Pipelined(ctx, func(redis.Pipeliner) {}); err != nil {
		t.Fatalf("Pipelined after the commits: %v", err)
	}
	errs := make([]error, len(leases))
	for i := range leases {
		select {
		case errs[i] = <-results[i]:
		case <-ctx.Done():
			t.Fatalf("commit %d never settled", i)
		}
	}
	return errs
}
