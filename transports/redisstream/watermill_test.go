package redisstream

import (
	"testing"

	"github.com/busline/busline/transports/transporttest"
)

// TestWatermillPubSub runs Watermill's universal Pub/Sub test suite
// against Redis Streams, under a key prefix of its own.
func TestWatermillPubSub(t *testing.T) {
	needRedis(t)
	transporttest.RunWatermill(t, func(t testing.TB) string { return testURL(t, "") },
		transporttest.WatermillFeatures(true), false)
}
