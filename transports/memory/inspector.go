package memory

import (
	"context"
	"slices"
	"time"

	"github.com/busline/busline/transports"
)

var _ transports.Inspector = (*Transport)(nil)

// Inspect implements transports.Inspector: every stream of the broker with
// its length, every group with its consumers, pending entries, lag, the age
// of its oldest pending entry and its dead letters, and the groups that
// only have dead letters left. It only reads.
func (t *Transport) Inspect(ctx context.Context, opts transports.InspectOptions) (*transports.Inspection, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return t.broker.inspect(opts), nil
}

func (b *Broker) inspect(opts transports.InspectOptions) *transports.Inspection {
	wantEvent := selector(opts.Events)
	wantGroup := selector(opts.Groups)
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	out := &transports.Inspection{}
	seen := map[string]bool{}
	for name, s := range b.streams {
		if !wantEvent(name) {
			continue
		}
		si := transports.StreamInfo{Event: name, Key: name, Length: int64(s.length()), Groups: len(s.groups)}
		if e, ok := s.get(s.next - 1); ok {
			si.LastEntryAt = e.at
		}
		out.Streams = append(out.Streams, si)
		for gname, g := range s.groups {
			if !wantGroup(gname) {
				continue
			}
			seen[gname] = true
			out.Groups = append(out.Groups, inspectGroupLocked(s, g, now, int64(len(b.dead[gname]))))
		}
	}
	for gname, list := range b.dead {
		if len(list) == 0 || seen[gname] || !wantGroup(gname) {
			continue
		}
		event := list[0].topic
		if !wantEvent(event) {
			continue
		}
		out.Groups = append(out.Groups, transports.GroupInfo{
			Group: gname, Event: event, DeadLetters: int64(len(list)),
		})
	}
	slices.SortFunc(out.Streams, func(a, b transports.StreamInfo) int { return compareStrings(a.Event, b.Event) })
	slices.SortFunc(out.Groups, func(a, b transports.GroupInfo) int {
		if c := compareStrings(a.Event, b.Event); c != 0 {
			return c
		}
		return compareStrings(a.Group, b.Group)
	})
	return out
}

func inspectGroupLocked(s *stream, g *group, now time.Time, dead int64) transports.GroupInfo {
	gi := transports.GroupInfo{
		Group: g.name, Event: s.name, Consumers: len(g.consumers),
		Pending: int64(len(g.pending)), Lag: int64(s.next - max(g.cursor, s.first)),
		DeadLetters: dead,
	}
	per := map[string]int64{}
	var oldest time.Time
	for _, pe := range g.pending {
		per[pe.consumer]++
		at := pe.delivered
		if e, ok := s.get(pe.seq); ok {
			at = e.at
		}
		if oldest.IsZero() || at.Before(oldest) {
			oldest = at
		}
	}
	if !oldest.IsZero() {
		gi.OldestPending = max(now.Sub(oldest), 0)
	}
	for _, c := range g.consumers {
		gi.Members = append(gi.Members, transports.ConsumerInfo{Name: c.name, Pending: per[c.name], Idle: max(now.Sub(c.lastSeen), 0), Live: c.open > 0})
	}
	slices.SortFunc(gi.Members, func(a, b transports.ConsumerInfo) int { return compareStrings(a.Name, b.Name) })
	return gi
}

// selector returns a predicate that accepts every name when names is empty.
func selector(names []string) func(string) bool {
	if len(names) == 0 {
		return func(string) bool { return true }
	}
	return func(n string) bool { return slices.Contains(names, n) }
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
