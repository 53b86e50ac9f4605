package transporttest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/transports"
)

// 14. One owner per group: "billing-eu" + "invoice" and "billing" +
// "eu-invoice" spell the same group; the second pair is refused at Start
// with an error naming both, where the transport keeps records. A group
// without a recorded owner is adopted by the first pair that starts.
func (s *suite) groupOwner(t *testing.T) {
	url := s.h.URL(t)
	first := newBus(t, url, "billing-eu", "p1")
	listen(t, first, itemEvent, "invoice", newRecorder().handler)
	start(t, first)
	rs, ok := first.Transport().(transports.RecordStore)
	if !ok {
		t.Skipf("%s keeps no records: the owner check is skipped (documented)", s.h.Name)
	}
	// Another process of the same pair is welcome.
	same := newBus(t, url, "billing-eu", "p2")
	listen(t, same, itemEvent, "invoice", newRecorder().handler)
	start(t, same)

	other := newBus(t, url, "billing", "p3")
	listen(t, other, itemEvent, "eu-invoice", newRecorder().handler)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := other.Start(ctx)
	if !errors.Is(err, bus.ErrGroupConflict) {
		t.Fatalf("Start of a second pair spelling the same group: %v, want ErrGroupConflict", err)
	}
	for _, want := range []string{`"billing-eu-invoice"`, `service "billing-eu" listener "invoice"`, `service "billing" listener "eu-invoice"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}

	// A group created before owners were recorded has none: the first
	// pair to start adopts it.
	if err := rs.DeleteRecord(ctx, transports.RecordKindOwners, "billing-eu-invoice"); err != nil {
		t.Fatal(err)
	}
	adopter := newBus(t, url, "billing", "p4")
	listen(t, adopter, itemEvent, "eu-invoice", newRecorder().handler)
	start(t, adopter)
	recs, err := rs.Records(ctx, transports.RecordKindOwners)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(recs["billing-eu-invoice"]); got != "billing/eu-invoice" {
		t.Errorf("owner after adoption %q, want billing/eu-invoice", got)
	}
}

// Names are checked by one rule on every transport: a name that collides
// with a transport's own queues, or is too long for any broker, is refused
// before anything reaches the broker.
func (s *suite) names(t *testing.T) {
	url := s.h.URL(t)
	b := newBus(t, url, "svc", "p1")
	h := newRecorder().handler
	for _, name := range []string{"x.dead", "x.retry.1s", "a.records.owners", strings.Repeat("l", bus.MaxListenerLen+1), "-x", "x/y"} {
		if err := bus.Listen(b, itemEvent, name, h); !errors.Is(err, bus.ErrInvalidListener) {
			t.Errorf("Listen(%.20q): %v, want ErrInvalidListener", name, err)
		}
	}
	listen(t, b, itemEvent, "x", h)
	listen(t, b, itemEvent, "dead", h)
	listen(t, b, itemEvent, strings.Repeat("l", bus.MaxListenerLen), h)
	start(t, b)
	if ds, ok := b.Transport().(transports.DeadLetterStore); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ds.ReplayDeadLetter(ctx, "svc-x", "0-1"); !errors.Is(err, transports.ErrNotFound) {
			t.Errorf("ReplayDeadLetter of a missing dead letter: %v, want transports.ErrNotFound", err)
		}
	}
	for _, svc := range []string{strings.Repeat("s", bus.MaxServiceLen+1), strings.Repeat("s", 10000), "a.retry.b"} {
		_, err := bus.New(bus.Config{Service: svc, Transport: url})
		if !errors.Is(err, bus.ErrInvalidConfig) || strings.Contains(err.Error(), strings.Repeat("s", 60)) {
			t.Errorf("New with service %.20q...: %.200v, want a short ErrInvalidConfig", svc, err)
		}
	}
}
