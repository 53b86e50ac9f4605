package transporttest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/transports"
)

// ScheduleCaps declares what a transport's transports.Scheduler can do
// besides delivering on time. A false flag makes the suite check the
// documented weaker behaviour instead.
type ScheduleCaps struct {
	// Cancel: CancelScheduled removes an event not yet due. False: it
	// returns an error wrapping transports.ErrUnsupported and the event is
	// still delivered.
	Cancel bool
	// Counts: Scheduled reports counts and next due times per event.
	// False: it returns an error wrapping transports.ErrUnsupported.
	Counts bool
}

// RunSchedule runs the scheduling section of the conformance suite
// (WithDelay, WithDeliverAt, CancelScheduled) against the transport of h.
// A transport without transports.Scheduler is checked to refuse a
// delayed Fire with an error wrapping transports.ErrUnsupported, and the
// rest of the section is skipped with that reason.
func RunSchedule(t *testing.T, h Harness, caps ScheduleCaps) {
	if h.URL == nil {
		t.Fatal("transporttest: Harness.URL is required")
	}
	s := &scheduleSuite{h: h, caps: caps}
	t.Run("Capability", s.capability)
	if t.Failed() || !s.supported {
		return
	}
	t.Run("NotBeforeDue", s.notBeforeDue)
	t.Run("GroupCreatedBeforeDue", s.groupCreatedBeforeDue)
	t.Run("PastDueAtOnce", s.pastDue)
	t.Run("TooFarAhead", s.tooFar)
	t.Run("SchedulerRestart", s.schedulerRestart)
	t.Run("Cancel", s.cancel)
	t.Run("Counts", s.counts)
}

type scheduleSuite struct {
	h         Harness
	caps      ScheduleCaps
	supported bool
}

// timed records when each event arrived and what its due time said.
// Arrival times are wall-clock readings only (Round(0)): due times are
// instants of the wall clock, which the movers compare with theirs, and a
// comparison of two readings that both carry a monotonic one would use
// that instead. On a host whose wall clock is slewed (measured: 5 ms a
// second faster than the monotonic clock), an event moved at its due time
// then looked a few milliseconds early.
type timed struct {
	mu   sync.Mutex
	got  map[string][]time.Time
	due  map[string]string
	seen []string
}

func newTimed() *timed { return &timed{got: map[string][]time.Time{}, due: map[string]string{}} }

// timedListener starts a bus of process p1 of service svc on url with
// the listener name, whose handler records when each event arrived.
func timedListener(t *testing.T, url, name string) (*bus.Bus, *timed) {
	t.Helper()
	b := newBus(t, url, "svc", "p1")
	r := newTimed()
	listen(t, b, itemEvent, name, r.handler)
	start(t, b)
	return b, r
}

// notEarly fails t when event id first arrived before its due time at.
func (r *timed) notEarly(t testing.TB, id string, at time.Time) {
	t.Helper()
	if got := r.times(id)[0]; got.Before(at) {
		t.Errorf("event %s arrived %s before its due time", id, at.Sub(got))
	}
}

func (r *timed) handler(_ context.Context, d bus.Delivery[Item]) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got[d.ID] = append(r.got[d.ID], time.Now().Round(0))
	r.due[d.ID] = d.Metadata[bus.MetaDeliverAt]
	r.seen = append(r.seen, d.ID)
	return nil
}

func (r *timed) has(ids ...string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		if len(r.got[id]) == 0 {
			return false
		}
	}
	return true
}

func (r *timed) times(id string) []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.got[id]...)
}

func fireAt(t testing.TB, b *bus.Bus, n int, opt bus.FireOption) string {
	t.Helper()
	id, err := bus.Fire(context.Background(), b, itemEvent, Item{N: n}, opt)
	if err != nil {
		t.Fatalf("Fire #%d for later: %v", n, err)
	}
	return id
}

func (s *scheduleSuite) capability(t *testing.T) {
	b := newBus(t, s.h.URL(t), "svc", "p1")
	if _, ok := b.Transport().(transports.Scheduler); ok {
		s.supported = true
		return
	}
	_, err := bus.Fire(context.Background(), b, itemEvent, Item{}, bus.WithDelay(time.Minute))
	if !errors.Is(err, transports.ErrUnsupported) {
		t.Fatalf("delayed Fire on %T, which has no transports.Scheduler: got %v, want an error wrapping transports.ErrUnsupported", b.Transport(), err)
	}
	t.Skipf("transport %T does not implement transports.Scheduler; delayed Fire is refused with %v", b.Transport(), err)
}

// Every event arrives once, no earlier than its due time, whatever the
// order of the due times.
func (s *scheduleSuite) notBeforeDue(t *testing.T) {
	url := s.h.URL(t)
	b, r := timedListener(t, url, "later")
	delays := []time.Duration{900, 300, 600, 100, 1200, 450}
	due := map[string]time.Time{}
	var ids []string
	for i, ms := range delays {
		d := s.h.scale(ms * time.Millisecond)
		at := time.Now().Add(d)
		id := fireAt(t, b, i, bus.WithDelay(d))
		due[id], ids = at, append(ids, id)
	}
	eventually(t, s.h.scale(20*time.Second), "every delayed event", func() bool { return r.has(ids...) })
	for _, id := range ids {
		r.notEarly(t, id, due[id])
		times := r.times(id)
		if at, err := time.Parse(time.RFC3339Nano, r.due[id]); err != nil || at.Sub(due[id]).Abs() > time.Second {
			t.Errorf("event %s: metadata %s = %q, want about %s", id, bus.MetaDeliverAt, r.due[id], due[id].UTC().Format(time.RFC3339Nano))
		}
		t.Logf("event %s: late by %s", id, times[0].Sub(due[id]))
	}
	waitNoMore(t, s.h, func() bool {
		for _, id := range ids {
			if n := len(r.times(id)); n != 1 {
				t.Errorf("event %s delivered %d times, want 1", id, n)
				return false
			}
		}
		return true
	})
}

// A group that starts after the Fire but before the due time gets the event.
func (s *scheduleSuite) groupCreatedBeforeDue(t *testing.T) {
	url := s.h.URL(t)
	producer := newBus(t, url, "producer", "p0")
	delay := s.h.scale(1500 * time.Millisecond)
	at := time.Now().Add(delay)
	id := fireAt(t, producer, 1, bus.WithDelay(delay))
	_, r := timedListener(t, url, "late_comer")
	if time.Now().After(at) {
		t.Skip("the group was created after the due time (slow machine): nothing to check")
	}
	eventually(t, s.h.scale(20*time.Second), "the group created before the due time to get the event", func() bool { return r.has(id) })
	r.notEarly(t, id, at)
}

// A due time in the past is delivered at once.
func (s *scheduleSuite) pastDue(t *testing.T) {
	url := s.h.URL(t)
	b, r := timedListener(t, url, "now")
	id := fireAt(t, b, 1, bus.WithDeliverAt(time.Now().Add(-time.Hour)))
	id2 := fireAt(t, b, 2, bus.WithDelay(-time.Second))
	eventually(t, s.h.scale(10*time.Second), "events due in the past", func() bool { return r.has(id, id2) })
}

// More than 30 days ahead is refused; 30 days is accepted.
func (s *scheduleSuite) tooFar(t *testing.T) {
	b := newBus(t, s.h.URL(t), "svc", "p1")
	_, err := bus.Fire(context.Background(), b, itemEvent, Item{}, bus.WithDelay(bus.MaxDelay+time.Hour))
	if !errors.Is(err, bus.ErrDelayTooLong) {
		t.Fatalf("Fire 30 days + 1h ahead: got %v, want an error wrapping bus.ErrDelayTooLong", err)
	}
	_, err = bus.Fire(context.Background(), b, itemEvent, Item{}, bus.WithDeliverAt(time.Now().Add(31*24*time.Hour)))
	if !errors.Is(err, bus.ErrDelayTooLong) {
		t.Fatalf("Fire at now + 31 days: got %v, want an error wrapping bus.ErrDelayTooLong", err)
	}
	id, err := bus.Fire(context.Background(), b, itemEvent, Item{}, bus.WithDelay(bus.MaxDelay-time.Minute))
	if err != nil {
		t.Fatalf("Fire just under 30 days ahead: %v", err)
	}
	if s.caps.Cancel {
		if err := bus.CancelScheduled(context.Background(), b, id); err != nil {
			t.Fatalf("CancelScheduled: %v", err)
		}
	}
}

// The schedule is on the broker: an event scheduled by a process that
// closed before the due time is still delivered.
func (s *scheduleSuite) schedulerRestart(t *testing.T) {
	url := s.h.URL(t)
	_, r := timedListener(t, url, "durable")
	producer := newBus(t, url, "producer", "p0")
	delay := s.h.scale(800 * time.Millisecond)
	at := time.Now().Add(delay)
	id := fireAt(t, producer, 1, bus.WithDelay(delay))
	if err := producer.Close(); err != nil {
		t.Fatalf("close the producer: %v", err)
	}
	eventually(t, s.h.scale(20*time.Second), "the event of a closed producer", func() bool { return r.has(id) })
	r.notEarly(t, id, at)
}

// A cancelled event is never delivered; a second cancel and a cancel of
// an unknown ID say ErrNotScheduled.
func (s *scheduleSuite) cancel(t *testing.T) {
	url := s.h.URL(t)
	b, r := timedListener(t, url, "cancel")
	ctx := context.Background()
	delay := s.h.scale(700 * time.Millisecond)
	cancelled := fireAt(t, b, 1, bus.WithDelay(delay))
	err := bus.CancelScheduled(ctx, b, cancelled)
	if !s.caps.Cancel {
		if !errors.Is(err, transports.ErrUnsupported) {
			t.Fatalf("CancelScheduled on a transport declared unable to cancel: got %v, want an error wrapping transports.ErrUnsupported", err)
		}
		eventually(t, s.h.scale(20*time.Second), "the event whose cancel was refused", func() bool { return r.has(cancelled) })
		return
	}
	if err != nil {
		t.Fatalf("CancelScheduled: %v", err)
	}
	if err := bus.CancelScheduled(ctx, b, cancelled); !errors.Is(err, bus.ErrNotScheduled) {
		t.Errorf("second CancelScheduled: got %v, want an error wrapping bus.ErrNotScheduled", err)
	}
	if err := bus.CancelScheduled(ctx, b, "no-such-event"); !errors.Is(err, bus.ErrNotScheduled) {
		t.Errorf("CancelScheduled of an unknown ID: got %v, want an error wrapping bus.ErrNotScheduled", err)
	}
	// A marker due after the cancelled event: once it arrived, the
	// cancelled one would have too.
	marker := fireAt(t, b, 2, bus.WithDelay(delay+s.h.scale(200*time.Millisecond)))
	eventually(t, s.h.scale(20*time.Second), "the marker", func() bool { return r.has(marker) })
	if n := len(r.times(cancelled)); n != 0 {
		t.Errorf("cancelled event delivered %d times", n)
	}
	// Due and moved: too late to cancel.
	if err := bus.CancelScheduled(ctx, b, marker); !errors.Is(err, bus.ErrNotScheduled) {
		t.Errorf("CancelScheduled of a delivered event: got %v, want an error wrapping bus.ErrNotScheduled", err)
	}
}

// Scheduled reports the count and the earliest due time per event.
func (s *scheduleSuite) counts(t *testing.T) {
	url := s.h.URL(t)
	b := newBus(t, url, "svc", "p1")
	sch := b.Transport().(transports.Scheduler)
	ctx := context.Background()
	if !s.caps.Counts {
		if _, err := sch.Scheduled(ctx); !errors.Is(err, transports.ErrUnsupported) {
			t.Fatalf("Scheduled on a transport declared unable to count: got %v, want an error wrapping transports.ErrUnsupported", err)
		}
		return
	}
	first := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	var ids []string
	for i := range 3 {
		ids = append(ids, fireAt(t, b, i, bus.WithDeliverAt(first.Add(time.Duration(2-i)*time.Minute))))
	}
	list, err := sch.Scheduled(ctx)
	if err != nil {
		t.Fatalf("Scheduled: %v", err)
	}
	var got *transports.ScheduledInfo
	for i := range list {
		if list[i].Event == itemEvent.Name() {
			got = &list[i]
		}
	}
	if got == nil || got.Count != 3 || !got.NextDue.Equal(first) {
		t.Fatalf("Scheduled: got %+v, want %s with 3 events, next due %s", list, itemEvent.Name(), first)
	}
	if s.caps.Cancel {
		for _, id := range ids {
			if err := bus.CancelScheduled(ctx, b, id); err != nil {
				t.Fatalf("CancelScheduled: %v", err)
			}
		}
		list, err = sch.Scheduled(ctx)
		if err != nil {
			t.Fatalf("Scheduled: %v", err)
		}
		for _, si := range list {
			if si.Event == itemEvent.Name() {
				t.Errorf("after cancelling everything, Scheduled still reports %+v", si)
			}
		}
	}
}

// waitNoMore gives duplicates a moment to show up, then checks ok: a
// duplicate would come right after the first delivery.
func waitNoMore(t testing.TB, h Harness, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(h.scale(300 * time.Millisecond))
	for time.Now().Before(deadline) {
		if !ok() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
