package bench

import (
	"crypto/rand"
	"encoding/hex"
)

// runName returns a fresh name for the keys, queues and exchanges of one
// run: "busline-bench-" and 8 random hex digits.
func runName() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "busline-bench-" + hex.EncodeToString(b)
	if testHookRunName != nil {
		testHookRunName(name)
	}
	return name
}

// testHookRunName, when set by a test, is told the name of each run.
var testHookRunName func(string)
