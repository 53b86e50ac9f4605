package faults

import (
	"testing"

	"go.uber.org/goleak"
)

// checkLeaks fails t if goroutines started during the test are still
// running once every clean-up registered after this call has run (buses
// and transports closed, brokers stopped). Call it first in a test.
// Goroutines running before the test (another test's, the runtime's) are
// ignored; goleak retries for a while, so goroutines that are on their way
// out pass.
func checkLeaks(t *testing.T) {
	t.Helper()
	opts := []goleak.Option{goleak.IgnoreCurrent()}
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}
