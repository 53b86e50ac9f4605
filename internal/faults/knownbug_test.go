package faults

import (
	"fmt"
	"os"
	"testing"
)

// knownBug records a deviation from the contract that was reported and
// not fixed yet (docs/reliability.md lists them). It is logged, not
// failed, so that the suite keeps guarding everything else in CI; with
// BUSLINE_FAULTS_STRICT=1 it fails the test. The assertion around it
// tightens by itself once the bug is fixed: only the exact known
// behaviour is let through.
func knownBug(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := "KNOWN BUG: " + fmt.Sprintf(format, args...)
	if os.Getenv("BUSLINE_FAULTS_STRICT") == "1" {
		t.Error(msg)
		return
	}
	t.Log(msg)
}
