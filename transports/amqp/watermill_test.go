package amqp

import (
	"testing"

	"github.com/busline/busline/transports/transporttest"
)

// TestWatermillPubSub runs Watermill's universal Pub/Sub test suite
// against RabbitMQ, on an exchange and queue names of its own.
func TestWatermillPubSub(t *testing.T) {
	requireBroker(t)
	transporttest.RunWatermill(t, func(t testing.TB) string { return testURL(t, "", "") },
		transporttest.WatermillFeatures(true), false)
}
