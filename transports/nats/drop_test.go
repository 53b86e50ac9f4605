package nats

import (
	"context"
	"testing"

	natsgo "github.com/nats-io/nats.go"

	"github.com/busline/busline/internal/brokertest"
)

// DropConnections closes the connection the transport opened, and leaves
// one the caller passed to New alone, saying it dropped nothing.
func TestDropConnections(t *testing.T) {
	own := openTransport(t, testURL(t, "", ""))
	if !own.DropConnections() {
		t.Error("DropConnections on a transport opened from a URL = false, want true")
	}
	if !own.Conn().IsClosed() {
		t.Error("the transport's own connection is still open after DropConnections")
	}

	nc, err := natsgo.Connect(brokertest.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	opts := DefaultOptions()
	opts.Prefix = "bltest-drop"
	theirs, err := New(context.Background(), nc, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = theirs.Close() })
	if theirs.DropConnections() {
		t.Error("DropConnections on a caller's connection = true, want false")
	}
	if !nc.IsConnected() {
		t.Error("the caller's connection was closed by DropConnections")
	}
}
