package nats

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/internal/brokertest"
	"github.com/busline/busline/internal/faults"
)

// A Publish ends with its message's context (bus.Fire's ctx) when the
// server does not acknowledge (connected, stalled: a proxy holds what it
// sends), not after the transport's Timeout (30 s here).
func TestPublishEndsWithItsContextOnAStalledServer(t *testing.T) {
	needNATS(t)
	u, err := url.Parse(brokertest.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	p, err := faults.StartProxy(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	tr := openTransport(t, testURL(t, "nats://"+p.Addr(), "timeout=30s"))
	if err := tr.Publish("stall.probe", message.NewMessage("before", []byte(`{}`))); err != nil {
		t.Fatal(err) // the stream exists, the connection is up
	}
	p.Hold()
	t.Cleanup(p.Release) // before the transport's Close and the cleanup

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	msg := message.NewMessage("stalled-1", []byte(`{}`))
	msg.SetContext(ctx)
	start := time.Now()
	err = tr.Publish("stall.probe", msg)
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish on a stalled server = %v, want context.DeadlineExceeded", err)
	}
	if took > 10*time.Second {
		t.Fatalf("Publish with a 200ms deadline returned after %s on a stalled server", took)
	}
	t.Logf("returned after %s: %v", took.Round(time.Millisecond), err)
	p.Release()
	if err := tr.Publish("stall.probe", message.NewMessage("after", []byte(`{}`))); err != nil {
		t.Fatalf("publish after the stall: %v", err)
	}
}
