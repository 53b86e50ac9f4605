package redisstream

import (
	"context"
	"errors"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/transports"
)

// DropConnections closes what the transport opened: a publish after it
// fails at once with the closed client's error, and Close after it
// reports nothing more.
func TestDropConnectionsClosesTheOwnClient(t *testing.T) {
	tr := openTransport(t, testURL(t, ""))
	publish(t, tr, "drop.probe", "before")
	if !tr.DropConnections() {
		t.Fatal("DropConnections on a transport opened from a URL = false, want true")
	}
	if err := tr.Publish("drop.probe", message.NewMessage(randomHex(8), []byte("after"))); !errors.Is(err, redis.ErrClosed) {
		t.Errorf("Publish after DropConnections = %v, want redis.ErrClosed", err)
	}
	if err := tr.Close(); err != nil {
		t.Errorf("Close after DropConnections = %v", err)
	}
}

// A transport on a client the caller passed to New leaves that client
// alone, and says it dropped nothing.
func TestDropConnectionsLeavesACallersClient(t *testing.T) {
	needRedis(t)
	c := redis.NewClient(&redis.Options{Addr: testAddr()})
	t.Cleanup(func() { _ = c.Close() })
	tr, err := New(context.Background(), c, DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	var _ transports.ConnectionDropper = tr
	if tr.DropConnections() {
		t.Error("DropConnections on a caller's client = true, want false")
	}
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Errorf("the caller's client after DropConnections: %v", err)
	}
}
