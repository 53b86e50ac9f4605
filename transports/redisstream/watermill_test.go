package redisstream

import (
	"testing"

	"github.com/busline/busline/transports/transporttest"
)

// TestWatermillPubSub runs Watermill's universal Pub/Sub test suite
// against Redis Streams, under a key prefix of its own.
func TestWatermillPubSub(t *testing.T) {
	needRedis(t)
	transporttest.RunWatermill(t, watermillURL, transporttest.WatermillFeatures(true))
}

func watermillURL(t testing.TB) string { return testURL(t, "") }

// TestWatermillRouter runs a subscriber under a Watermill Router with no
// Busline middleware: acks, nacks and context cancellation behave as with
// Watermill's own drivers.
func TestWatermillRouter(t *testing.T) {
	needRedis(t)
	transporttest.RunWatermillRouter(t, watermillURL)
}
