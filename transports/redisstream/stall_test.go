package redisstream

import (
	"strings"
	"testing"
	"time"

	"github.com/busline/busline/internal/faults"
)

// A Publish whose context ends while Redis does not answer (connected,
// stalled: a proxy holds its replies) returns by that deadline with the
// context's error, not after the client's read timeout (30 s here).
func TestPublishEndsWithItsContextOnAStalledRedis(t *testing.T) {
	stalledPublish(t, "read_timeout=30s", 1)
}

// The same for a call of many messages while the pipe is stuck on an
// earlier batch (publish_batch=2): the call stops queueing and waiting
// at its deadline.
func TestPublishOfManyEndsWithItsContextOnAStalledRedis(t *testing.T) {
	stalledPublish(t, "read_timeout=30s&publish_batch=2", 10)
}

// stalledPublish publishes n messages in one call on a Redis a proxy holds.
func stalledPublish(t *testing.T, query string, n int) {
	raw := testURL(t, query)
	p, err := faults.StartProxy(testAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	tr := openTransport(t, strings.Replace(raw, testAddr(), p.Addr(), 1))
	publish(t, tr, "stall.probe", "before") // connected
	p.Hold()
	t.Cleanup(p.Release) // before the transport's Close

	faults.PublishEndsByItsDeadline(t, tr, "stall.probe", n, 30*time.Second)
	p.Release() // the publisher's XADD gets its reply; the next publish works
	publish(t, tr, "stall.probe", "after")
}
