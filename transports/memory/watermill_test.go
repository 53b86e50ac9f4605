package memory_test

import (
	"crypto/rand"
	"testing"

	"github.com/busline/busline/transports/memory"
	"github.com/busline/busline/transports/transporttest"
)

// TestWatermillPubSub runs Watermill's universal Pub/Sub test suite
// against the memory transport. Brokers are per process and shared by
// name, so events outlive the Transport that fired them (Persistent).
func TestWatermillPubSub(t *testing.T) {
	transporttest.RunWatermill(t, watermillURL, transporttest.WatermillFeatures(true))
}

func watermillURL(t testing.TB) string {
	name := "watermill-" + rand.Text()
	t.Cleanup(func() { memory.Forget(name) })
	return "memory://" + name
}

// TestWatermillRouter runs a subscriber under a Watermill Router with no
// Busline middleware: acks, nacks and context cancellation behave as with
// Watermill's own drivers.
func TestWatermillRouter(t *testing.T) {
	transporttest.RunWatermillRouter(t, watermillURL)
}
