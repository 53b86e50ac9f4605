package nats

import (
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
	p, through := faults.Proxied(t, brokertest.NATSURL())
	tr := openTransport(t, testURL(t, through, "timeout=30s"))
	if err := tr.Publish("stall.probe", message.NewMessage("before", []byte(`{}`))); err != nil {
		t.Fatal(err) // the stream exists, the connection is up
	}
	p.Hold()
	t.Cleanup(p.Release) // before the transport's Close and the cleanup

	faults.PublishEndsByItsDeadline(t, tr, "stall.probe", 1, 30*time.Second)
	p.Release()
	if err := tr.Publish("stall.probe", message.NewMessage("after", []byte(`{}`))); err != nil {
		t.Fatalf("publish after the stall: %v", err)
	}
}
