package faults

import (
	"testing"
	"time"

	"github.com/busline/busline/internal/procs"
)

// child is a listener process (procs.Child) as the suite's tests use it.
type child struct {
	*procs.Child
	startAt time.Time // just before exec
}

// startChild starts a listener process; it is killed when the test ends
// if it still runs.
func startChild(t testing.TB, spec childSpec) *child {
	t.Helper()
	c := procs.Start(t, spec, "^$")
	return &child{Child: c, startAt: c.StartAt}
}

func (c *child) kill() { c.Kill() }

func (c *child) terminate(within time.Duration) (error, bool) { return c.Terminate(within) }

func (c *child) boot() time.Time { return c.Boot() }

// record is one line of a child's output file.
type record struct {
	kind    string // "B" or "H"
	id      string
	attempt int
	at      time.Time
	process string
}

// readRecords reads the records of the files, in file order.
func readRecords(t testing.TB, files ...string) []record {
	t.Helper()
	recs := procs.ReadRecords(t, files...)
	out := make([]record, len(recs))
	for i, r := range recs {
		out[i] = record{kind: r.Kind, id: r.ID, attempt: r.Attempt, at: r.At, process: r.Process}
	}
	return out
}

// countHandled counts the H lines of the files without parsing them all.
func countHandled(files ...string) int { return procs.CountLines("H", files...) }

// handledBy groups the H records by event ID.
func handledBy(recs []record) map[string][]record {
	m := map[string][]record{}
	for _, r := range recs {
		if r.kind == "H" {
			m[r.id] = append(m[r.id], r)
		}
	}
	return m
}

// outFile is the output file of a child within the test's temp dir.
func outFile(dir, name string) string { return procs.OutFile(dir, name) }

// waitFor polls cond every 10ms until it holds or within passes.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
