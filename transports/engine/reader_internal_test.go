package engine

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/busline/busline/transports/driver"
)

// A read ahead is sized by the recent hand-out rate: nothing before a
// rate is known, as many as the slots hand out within the horizon once
// it is, nothing for slow handlers, no bound for a negative horizon.
func TestAheadBudget(t *testing.T) {
	const horizon = 20 * time.Millisecond
	t0 := time.Unix(1_000_000, 0)
	var fast reader
	if n := fast.aheadBudget(t0, 0, horizon); n != 0 {
		t.Fatalf("budget before any rate = %d, want 0", n)
	}
	// 2,000 hand-outs in 100 ms, twice: 20,000/s, 400 within 20 ms once
	// the estimate settled (it averages with the previous one).
	if n := fast.aheadBudget(t0.Add(100*time.Millisecond), 2000, horizon); n != 200 {
		t.Fatalf("budget after 20,000/s from nothing = %d, want 200", n)
	}
	if n := fast.aheadBudget(t0.Add(200*time.Millisecond), 4000, horizon); n != 300 {
		t.Fatalf("budget after 20,000/s twice = %d, want 300", n)
	}
	// Within rateEvery the estimate is kept.
	if n := fast.aheadBudget(t0.Add(205*time.Millisecond), 4001, horizon); n != 300 {
		t.Fatalf("budget 5 ms later = %d, want 300 (kept)", n)
	}
	var slow reader
	slow.aheadBudget(t0, 0, horizon)
	for i := 1; i <= 5; i++ {
		if n := slow.aheadBudget(t0.Add(time.Duration(i)*time.Second), int64(3*i), horizon); n != 0 {
			t.Fatalf("budget of handlers at 3/s = %d, want 0", n)
		}
	}
	var unbounded reader
	if n := unbounded.aheadBudget(t0, 0, -1); n != math.MaxInt {
		t.Fatalf("budget with a negative horizon = %d, want no bound", n)
	}
}

// A batch of records names each entry once, with its highest count: a
// record put back after a failed flush and a later one for the same
// entry must not let the driver store the lower one last.
func TestHighestRecords(t *testing.T) {
	got := highestRecords([]driver.Attempt{
		{AckID: "a", Attempts: 1}, {AckID: "b", Attempts: 1},
		{AckID: "a", Attempts: 3}, {AckID: "a", Attempts: 2},
	})
	want := []driver.Attempt{{AckID: "a", Attempts: 3}, {AckID: "b", Attempts: 1}}
	if !slices.Equal(got, want) {
		t.Fatalf("highestRecords = %v, want %v", got, want)
	}
}
