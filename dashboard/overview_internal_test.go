package dashboard

import (
	"testing"
	"time"

	"github.com/busline/busline/transports"
)

func TestRateOverTheWindow(t *testing.T) {
	p := newPoller(Options{}.withDefaults())
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration, length int64) *float64 {
		ov := p.build(&transports.Inspection{Streams: []transports.StreamInfo{{Event: "a.b", Length: length}}}, t0.Add(d))
		return ov.Events[0].Rate
	}
	if r := at(0, 10); r != nil {
		t.Errorf("first inspection: rate %v, want none", *r)
	}
	if r := at(500*time.Millisecond, 12); r != nil {
		t.Errorf("half a second later: rate %v, want none yet", *r)
	}
	if r := at(2*time.Second, 30); r == nil || *r != 10 {
		t.Errorf("20 events in 2 s: rate %v, want 10", r)
	}
	// Twelve seconds in, the rate is measured from the newest sample at
	// least 10 s old (the one at 2 s), not from the first.
	if r := at(12*time.Second, 230); r == nil || *r != 20 {
		t.Errorf("200 events in the last 10 s: rate %v, want 20", r)
	}
	// A stream trimmed shorter than it was reads 0, never a negative rate.
	if r := at(13*time.Second, 20); r == nil || *r != 0 {
		t.Errorf("after trimming: rate %v, want 0", r)
	}
	if n := len(p.samples["a.b"]); n > 4 {
		t.Errorf("%d samples kept for one event", n)
	}
	// An event that is gone is forgotten.
	p.build(&transports.Inspection{}, t0.Add(14*time.Second))
	if _, ok := p.samples["a.b"]; ok {
		t.Error("samples of a vanished event kept")
	}
}
