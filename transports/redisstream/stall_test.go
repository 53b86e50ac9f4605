package redisstream

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/internal/faults"
)

// A Publish whose context ends while Redis does not answer (connected,
// stalled: a proxy holds its replies) returns by that deadline with the
// context's error, not after the client's read timeout (30 s here).
func TestPublishEndsWithItsContextOnAStalledRedis(t *testing.T) {
	raw := testURL(t, "read_timeout=30s")
	p, err := faults.StartProxy(testAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	tr := openTransport(t, strings.Replace(raw, testAddr(), p.Addr(), 1))
	publish(t, tr, "stall.probe", "before") // connected
	p.Hold()
	t.Cleanup(p.Release) // before the transport's Close

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	msg := message.NewMessage("stalled-1", []byte(`{}`))
	msg.SetContext(ctx)
	start := time.Now()
	err = tr.Publish("stall.probe", msg)
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish on a stalled Redis = %v, want context.DeadlineExceeded", err)
	}
	if took > 10*time.Second {
		t.Fatalf("Publish with a 200ms deadline returned after %s on a stalled Redis", took)
	}
	t.Logf("returned after %s: %v", took.Round(time.Millisecond), err)

	p.Release() // the publisher's XADD gets its reply; the next publish works
	publish(t, tr, "stall.probe", "after")
}
