package nats

import (
	"testing"

	"github.com/busline/busline/transports/transporttest"
)

// TestConformance runs the transport conformance suite against the NATS
// server of the tests, each test under a prefix of its own.
func TestConformance(t *testing.T) {
	needNATS(t)
	transporttest.Run(t, transporttest.Harness{
		Name: "nats",
		URL: func(t testing.TB) string {
			return testURL(t, "", "")
		},
		// JetStream's pending messages belong to the group's consumer,
		// not to a process: a process that stops gracefully returns what
		// it held at once, one killed leaves it for AckWait.
		OwnPendingFirst: false,
		Replay:          true,
		Retention:       true,
	})
}
