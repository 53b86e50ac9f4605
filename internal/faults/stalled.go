package faults

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// PublishEndsByItsDeadline publishes n messages in one call on topic
// with a 200ms deadline on their context through pub, whose broker is
// stalled (a Proxy that Holds), and fails t unless Publish returns an
// error wrapping context.DeadlineExceeded well before limit, the
// transport's own bound when a context has no deadline (make it long, so
// that the two differ).
func PublishEndsByItsDeadline(t testing.TB, pub message.Publisher, topic string, n int, limit time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = message.NewMessage(fmt.Sprintf("stalled-%d", i), []byte(`{}`))
		msgs[i].SetContext(ctx)
	}
	start := time.Now()
	err := pub.Publish(topic, msgs...)
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish on a stalled broker = %v, want context.DeadlineExceeded", err)
	}
	if took > limit/3 {
		t.Fatalf("Publish with a 200ms deadline returned after %s on a stalled broker (its own bound: %s)", took, limit)
	}
	t.Logf("returned after %s: %v", took.Round(time.Millisecond), err)
}

// Proxied starts a Proxy in front of the broker of the URL raw, stopped
// when t ends, and returns it with the URL that goes through it.
func Proxied(t testing.TB, raw string) (*Proxy, string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	p, err := StartProxy(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	u.Host = p.Addr()
	return p, u.String()
}
