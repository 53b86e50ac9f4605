package dashboard

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/busline/busline/transports"
)

// inspectTimeout bounds one inspection of the broker.
const inspectTimeout = 10 * time.Second

// overview is what the page and /metrics show: one inspection of the
// broker, with the rates measured between inspections.
type overview struct {
	At time.Time `json:"at"`
	// OK is false when the last inspection failed; Error says why and
	// the figures are those of LastOK, when there was one.
	OK     bool       `json:"ok"`
	Error  string     `json:"error,omitempty"`
	LastOK *time.Time `json:"last_ok,omitempty"`
	// Unsupported is set when the transport cannot be inspected at all.
	Unsupported bool                  `json:"unsupported,omitempty"`
	Events      []eventView           `json:"events"`
	Groups      []transports.GroupDoc `json:"groups"`
	Notes       []string              `json:"notes"`

	inspection *transports.Inspection     // nil until an inspection succeeded
	scheduled  []transports.ScheduledInfo // with it, when the transport counts them
}

type eventView struct {
	Event  string `json:"event"`
	Length int64  `json:"length"`
	Groups int    `json:"groups"`
	// LastEventAt is when the newest retained event was added, as
	// `busline inspect --json` names it; LastEntryAt is the same, under
	// the name this document used first.
	LastEventAt *time.Time `json:"last_event_at"`
	LastEntryAt *time.Time `json:"last_entry_at"`
	// Rate is the growth of the stream in events per second since the
	// previous inspection; nil on the first.
	Rate *float64 `json:"rate"`
	// Scheduled is the number of events fired with a delay that wait for
	// their due time, NextDue the earliest; nil where the transport does
	// not count them.
	Scheduled *int64     `json:"scheduled"`
	NextDue   *time.Time `json:"next_due"`
}

// sample is a stream length at a time, to measure a rate.
type sample struct {
	length int64
	at     time.Time
}

// poller inspects the broker for every viewer, at most once per half
// refresh interval, and keeps the last good inspection and the samples
// the rates are measured from. It has no goroutine: viewers call get.
type poller struct {
	o Options

	mu      sync.Mutex
	last    *overview
	lastOK  *overview
	samples map[string][]sample // per event, the last rateWindow of lengths
}

// rateWindow is the time over which a stream's rate is measured.
const rateWindow = 10 * time.Second

func newPoller(o Options) *poller {
	return &poller{o: o, samples: map[string][]sample{}}
}

// get returns an overview no older than half the refresh interval,
// inspecting the broker when the cached one is older.
func (p *poller) get(ctx context.Context) *overview {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if p.last != nil && now.Sub(p.last.At) < p.o.Refresh/2 {
		return p.last
	}
	ov := p.inspect(ctx, now)
	p.last = ov
	return ov
}

func (p *poller) inspect(ctx context.Context, now time.Time) *overview {
	if p.o.Inspector == nil {
		return &overview{At: now, OK: true, Unsupported: true, Events: []eventView{}, Groups: []transports.GroupDoc{},
			Notes: []string{"this transport cannot be inspected"}}
	}
	// The result is shared with every viewer: one leaving must not cancel it.
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), inspectTimeout)
	defer cancel()
	res, err := p.o.Inspector.Inspect(ictx, transports.InspectOptions{Groups: p.o.Groups})
	if err != nil {
		ov := &overview{At: now, Error: describe(err), Events: []eventView{}, Groups: []transports.GroupDoc{}, Notes: []string{}}
		if errors.Is(err, transports.ErrUnsupported) {
			ov.OK, ov.Unsupported = true, true
			ov.Notes = append(ov.Notes, ov.Error)
			ov.Error = ""
			return ov
		}
		if p.lastOK != nil {
			at := p.lastOK.At
			ov.LastOK = &at
			ov.Events, ov.Groups, ov.Notes = p.lastOK.Events, p.lastOK.Groups, p.lastOK.Notes
			ov.inspection, ov.scheduled = p.lastOK.inspection, p.lastOK.scheduled
		}
		return ov
	}
	ov := p.build(res, now)
	p.addScheduled(ictx, ov)
	p.lastOK = ov
	return ov
}

// addScheduled adds the scheduled counts to the events of ov, and the
// events that have only scheduled ones so far.
func (p *poller) addScheduled(ctx context.Context, ov *overview) {
	if p.o.Scheduler == nil {
		return
	}
	list, err := p.o.Scheduler.Scheduled(ctx)
	switch {
	case errors.Is(err, transports.ErrUnsupported):
		ov.Notes = append(ov.Notes, "this transport does not count scheduled events (fired with a delay) per event")
		return
	case err != nil:
		ov.Notes = append(ov.Notes, "scheduled events: "+describe(err))
		return
	}
	ov.scheduled = list
	byEvent := map[string]int{}
	for i, e := range ov.Events {
		byEvent[e.Event] = i
		zero := int64(0)
		ov.Events[i].Scheduled = &zero
	}
	for _, si := range list {
		n := si.Count
		i, ok := byEvent[si.Event]
		if !ok {
			ov.Events = append(ov.Events, eventView{Event: si.Event})
			i = len(ov.Events) - 1
		}
		ov.Events[i].Scheduled, ov.Events[i].NextDue = &n, timePtr(si.NextDue)
	}
	slices.SortFunc(ov.Events, func(a, b eventView) int { return strings.Compare(a.Event, b.Event) })
}

func describe(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("the broker did not answer within %s: %v", inspectTimeout, err)
	}
	return err.Error()
}

func (p *poller) build(res *transports.Inspection, now time.Time) *overview {
	ov := &overview{At: now, OK: true, Events: []eventView{}, Groups: []transports.GroupDoc{}, Notes: res.Notes, inspection: res}
	if ov.Notes == nil {
		ov.Notes = []string{}
	}
	seen := map[string]bool{}
	for _, s := range res.Streams {
		last := timePtr(s.LastEntryAt)
		ev := eventView{Event: s.Event, Length: s.Length, Groups: s.Groups, LastEventAt: last, LastEntryAt: last}
		kept := p.samples[s.Event]
		for len(kept) > 1 && now.Sub(kept[1].at) >= rateWindow {
			kept = kept[1:] // the oldest sample still at least rateWindow old stays
		}
		if len(kept) > 0 {
			ev.Rate = rate(kept[0], s, now)
		}
		p.samples[s.Event] = append(kept, sample{length: s.Length, at: now})
		seen[s.Event] = true
		ov.Events = append(ov.Events, ev)
	}
	for e := range p.samples {
		if !seen[e] {
			delete(p.samples, e)
		}
	}
	for _, g := range res.Groups {
		ov.Groups = append(ov.Groups, transports.NewGroupDoc(g, p.o.StaleAfter))
	}
	return ov
}

// rate is the growth of a stream since an earlier inspection (about
// rateWindow ago once the dashboard has run that long) in events per second. A stream held at its retention limit stops growing and reads 0
// while events still arrive; the page shows the time of the newest event
// beside the rate for that reason.
func rate(prev sample, s transports.StreamInfo, now time.Time) *float64 {
	dt := now.Sub(prev.at).Seconds()
	if dt < 1 {
		return nil // too short to say
	}
	r := 0.0
	if d := s.Length - prev.length; d > 0 {
		r = float64(d) / dt
	}
	return &r
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}
