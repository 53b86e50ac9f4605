package redisstream

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/internal/brokertest"
	"github.com/busline/busline/transports"
)

// testAddr is the Redis the tests use; BUSLINE_TEST_REDIS overrides it.
func testAddr() string {
	return brokertest.RedisAddr()
}

var (
	reachOnce sync.Once
	reachErr  error
)

// needRedis skips the test when Redis is unreachable, or fails it when
// BUSLINE_REQUIRE_BROKERS=1.
func needRedis(t testing.TB) {
	t.Helper()
	reachOnce.Do(func() {
		c := redis.NewClient(&redis.Options{Addr: testAddr(), DialTimeout: time.Second, MaxRetries: -1})
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		reachErr = c.Ping(ctx).Err()
	})
	if reachErr != nil {
		msg := "Redis at " + testAddr() + " unreachable (" + reachErr.Error() + "); start one with `redis-server --port 6379` or set BUSLINE_TEST_REDIS"
		brokertest.Unavailable(t, msg)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// testURL returns a redis:// URL with a key prefix of its own and extra
// query options, and deletes every key under the prefix when the test ends.
func testURL(t testing.TB, query string) string {
	t.Helper()
	needRedis(t)
	prefix := "bltest-" + randomHex(6) + ":"
	t.Cleanup(func() { brokertest.DeleteRedisPrefix(t, testAddr(), prefix) })
	u := "redis://" + testAddr() + "/0?prefix=" + url.QueryEscape(prefix)
	if query != "" {
		u += "&" + query
	}
	return u
}

// openTransport opens rawURL through the registry and closes it when the test ends.
func openTransport(t testing.TB, rawURL string) *Transport {
	t.Helper()
	tr, err := transports.Open(context.Background(), rawURL, transports.OpenOptions{Service: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr.(*Transport)
}

func newSub(t testing.TB, tr *Transport, group, consumer string, ackTimeout time.Duration, concurrency int, since transports.Since) message.Subscriber {
	t.Helper()
	s, err := tr.NewSubscriber(transports.SubscriberConfig{
		Group: group, Consumer: consumer, AckTimeout: ackTimeout, Concurrency: concurrency, Since: since,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func subscribe(t testing.TB, s message.Subscriber, topic string) (<-chan *message.Message, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := s.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	return ch, cancel
}

func publish(t testing.TB, tr *Transport, topic string, payloads ...string) []string {
	t.Helper()
	ids := make([]string, len(payloads))
	for i, p := range payloads {
		msg := message.NewMessage(randomHex(8), []byte(p))
		msg.Metadata.Set("ce-type", topic)
		if err := tr.Publish(topic, msg); err != nil {
			t.Fatal(err)
		}
		ids[i] = msg.UUID
	}
	return ids
}

// receive waits for the next message on ch.
func receive(t testing.TB, ch <-chan *message.Message, within time.Duration) *message.Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("subscription channel closed")
		}
		return m
	case <-time.After(within):
		t.Fatalf("no message within %s", within)
		return nil
	}
}

// noMessage asserts that nothing arrives on ch for d.
func noMessage(t testing.TB, ch <-chan *message.Message, d time.Duration) {
	t.Helper()
	select {
	case m := <-ch:
		t.Fatalf("unexpected message %s (%q)", m.UUID, m.Payload)
	case <-time.After(d):
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func pendingCount(t testing.TB, tr *Transport, topic, group string) int64 {
	t.Helper()
	p, err := tr.Client().XPending(context.Background(), tr.StreamKey(topic), group).Result()
	if err != nil {
		t.Fatal(err)
	}
	return p.Count
}

func attempt(m *message.Message) int { return transports.Info(m).Attempt }

// Opening with credentials Redis refuses fails with ErrAccessRefused, and
// the password is not in the error.
func TestOpenAccessRefused(t *testing.T) {
	needRedis(t)
	_, err := transports.Open(context.Background(), "redis://busline-nobody:s3cret@"+testAddr()+"/0", transports.OpenOptions{})
	if !errors.Is(err, transports.ErrAccessRefused) || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("Open: %v, want ErrAccessRefused without the password", err)
	}
}

// A database number beyond the server's is a fix of the URL, not a wait.
func TestOpenDatabaseOutOfRange(t *testing.T) {
	needRedis(t)
	_, err := transports.Open(context.Background(), "redis://"+testAddr()+"/4000", transports.OpenOptions{})
	if !errors.Is(err, transports.ErrInvalidConfig) {
		t.Fatalf("Open of database 4000: %v, want ErrInvalidConfig", err)
	}
}
