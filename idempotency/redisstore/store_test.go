package redisstore_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/idempotency"
	"github.com/busline/busline/idempotency/redisstore"
	"github.com/busline/busline/idempotency/storetest"
	"github.com/busline/busline/internal/brokertest"
	"github.com/busline/busline/transports"
)

// redisURL is the broker the tests use: BUSLINE_REDIS_URL or the local default.
func redisURL() string {
	return brokertest.RedisURL()
}

// client connects to the test Redis or skips the test (fails it when
// BUSLINE_REQUIRE_BROKERS=1).
func client(t testing.TB) *redis.Client {
	t.Helper()
	o, err := redis.ParseURL(redisURL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(o)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		msg := "Redis unreachable at " + redisURL() + " (" + err.Error() + "); start one with `redis-server --port 6379` or set BUSLINE_REDIS_URL"
		brokertest.Unavailable(t, msg)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// prefix returns a key prefix private to the test and deletes its keys after it.
func prefix(t testing.TB, c *redis.Client) string {
	p := "busline-test:" + strings.ToLower(rand.Text()[:10]) + ":dedup:"
	t.Cleanup(func() { deleteKeys(c, p) })
	return p
}

func deleteKeys(c *redis.Client, p string) {
	ctx := context.Background()
	iter := c.Scan(ctx, 0, p+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if len(keys) > 0 {
		c.Del(ctx, keys...)
	}
}

func storeURL(t testing.TB) string {
	c := client(t)
	u := redisURL()
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + "prefix=" + prefix(t, c)
}

func TestConformance(t *testing.T) {
	client(t)
	storetest.Run(t, storetest.Harness{URL: storeURL, Shared: true})
}

func TestKeysLiveUnderPrefixWithTTL(t *testing.T) {
	c := client(t)
	p := prefix(t, c)
	s := redisstore.New(c, redisstore.Options{Prefix: p})
	ctx := context.Background()
	st, l, err := s.Begin(ctx, "g:e1", 30*time.Second)
	if err != nil || st != idempotency.Fresh {
		t.Fatalf("Begin = %v, %v", st, err)
	}
	if v := c.Get(ctx, p+"g:e1").Val(); v != l.Token {
		t.Fatalf("leased key holds %q, want the token %q", v, l.Token)
	}
	if ttl := c.PTTL(ctx, p+"g:e1").Val(); ttl <= 0 || ttl > 30*time.Second {
		t.Fatalf("lease TTL %v, want <= 30s", ttl)
	}
	if err := s.Commit(ctx, l, 48*time.Hour); err != nil {
		t.Fatal(err)
	}
	if v := c.Get(ctx, p+"g:e1").Val(); v != "done" {
		t.Fatalf("committed key holds %q, want the done marker", v)
	}
	if ttl := c.PTTL(ctx, p+"g:e1").Val(); ttl < 47*time.Hour || ttl > 48*time.Hour {
		t.Fatalf("done TTL %v, want the 48h retention", ttl)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("Close closed a client the store did not open: %v", err)
	}
}

// TestCommitAfterExpiryWithoutTakeover: the token decides, not the clock;
// an expired lease nobody took over still commits.
func TestCommitAfterExpiryWithoutTakeover(t *testing.T) {
	c := client(t)
	p := prefix(t, c)
	s := redisstore.New(c, redisstore.Options{Prefix: p})
	ctx := context.Background()
	_, l, err := s.Begin(ctx, "g:e1", 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.Exists(ctx, p+"g:e1").Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatal("lease never expired")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Commit(ctx, l, time.Hour); err != nil {
		t.Fatalf("Commit = %v", err)
	}
	if st, _, _ := s.Begin(ctx, "g:e1", time.Minute); st != idempotency.Done {
		t.Fatalf("Begin after commit = %v, want Done", st)
	}
}

func TestOpenURL(t *testing.T) {
	c := client(t)
	p := prefix(t, c)
	ctx := context.Background()
	s, err := idempotency.Open(ctx, redisURL()+"?prefix="+p+"&pool_size=3", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.(*redisstore.Store).Prefix(); got != p {
		t.Fatalf("prefix %q, want %q", got, p)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		"redis://127.0.0.1:6379?prefix=",
		"redis://127.0.0.1:6379?cluster=maybe",
		"redis://127.0.0.1:6379?no_such_option=1",
	} {
		if _, err := idempotency.Open(ctx, bad, nil); err == nil {
			t.Errorf("Open(%s) succeeded, want an error", bad)
		}
	}
	_, err = idempotency.Open(ctx, "redis://:s3cret@127.0.0.1:1/0", nil)
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("unreachable Redis: err = %v; want an error without the password", err)
	}
	refused, err := url.Parse(redisURL())
	if err != nil {
		t.Fatal(err)
	}
	refused.User = url.UserPassword("busline-nobody", "s3cret")
	_, err = idempotency.Open(ctx, refused.String(), nil)
	if !errors.Is(err, transports.ErrAccessRefused) || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("refused credentials: err = %v; want transports.ErrAccessRefused without the password", err)
	}
}

// TestOwnServer runs against a redis-server started by the test: the
// script cache can be flushed there without disturbing anyone, and Commit
// must fall back from EVALSHA to EVAL.
func TestOwnServer(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed")
	}
	c := startRedis(t, bin)
	ctx := context.Background()
	s := redisstore.New(c, redisstore.Options{})
	_, l, err := s.Begin(ctx, "g:e1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, l, time.Hour); err != nil {
		t.Fatalf("Commit after SCRIPT FLUSH = %v, want the EVAL fallback", err)
	}
	if v := c.Get(ctx, redisstore.DefaultPrefix+"g:e1").Val(); v != "done" {
		t.Fatalf("key holds %q, want done", v)
	}

	// Deferred commits sent together fall back to EVAL as well.
	d := redisstore.New(c, redisstore.Options{Prefix: "deferred:", DeferCommits: true})
	var leases []idempotency.Lease
	for i := range 4 {
		_, l, err := d.Begin(ctx, fmt.Sprint("g:e", i), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, l)
	}
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for i, err := range commitTogether(ctx, t, d, leases) {
		if err != nil {
			t.Fatalf("deferred commit %d after SCRIPT FLUSH = %v, want the EVAL fallback", i, err)
		}
	}
}

func startRedis(t *testing.T, bin string) *redis.Client {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
	t.Cleanup(func() { _ = c.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Ping(context.Background()).Err()
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("own redis-server on port %d never answered: %v", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLegacyBegin runs Begin through the Lua script used with Redis < 7.0.
func TestLegacyBegin(t *testing.T) {
	c := client(t)
	s := redisstore.New(c, redisstore.Options{Prefix: prefix(t, c)})
	redisstore.UseBeginScript(s)
	ctx := context.Background()
	want := func(st idempotency.State, got idempotency.State, err error) {
		t.Helper()
		if err != nil || got != st {
			t.Fatalf("Begin = %v, %v; want %v", got, err, st)
		}
	}
	st, l, err := s.Begin(ctx, "g:e1", 10*time.Second)
	want(idempotency.Fresh, st, err)
	st, held, err := s.Begin(ctx, "g:e1", time.Second)
	want(idempotency.Held, st, err)
	if d := time.Until(held.Expires); d < 8*time.Second || d > 11*time.Second {
		t.Fatalf("held lease ends in %v, want about 10s", d)
	}
	if err := s.Commit(ctx, l, time.Hour); err != nil {
		t.Fatal(err)
	}
	st, _, err = s.Begin(ctx, "g:e1", time.Second)
	want(idempotency.Done, st, err)
}

// TestPipelinedCallsGetTheirOwnReplies: many goroutines share pipelines;
// each must get the reply to its own command.
func TestPipelinedCallsGetTheirOwnReplies(t *testing.T) {
	c := client(t)
	s := redisstore.New(c, redisstore.Options{Prefix: prefix(t, c)})
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Go(func() {
			for i := range 30 {
				key := fmt.Sprintf("g:%d-%d", g, i)
				st, l, err := s.Begin(ctx, key, time.Minute)
				if err != nil || st != idempotency.Fresh || l.Key != key {
					t.Errorf("Begin(%s) = %v, %+v, %v", key, st, l, err)
					return
				}
				if i%3 == 0 {
					if err := s.Abort(ctx, l); err != nil {
						t.Error(err)
					}
					continue
				}
				if err := s.Commit(ctx, l, time.Hour); err != nil {
					t.Errorf("Commit(%s): %v", key, err)
				}
				if st, _, err := s.Begin(ctx, key, time.Minute); err != nil || st != idempotency.Done {
					t.Errorf("Begin(%s) after commit = %v, %v", key, st, err)
				}
			}
		})
	}
	wg.Wait()
}
