package nats

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/busline/busline/transports"
)

// Inspect implements transports.Inspector with read-only JetStream API
// calls: the stream list under the prefix, each stream's consumers
// (pending = NumAckPending, lag = NumPending), the oldest unacknowledged
// message (the first message after the consumer's ack floor) and the
// dead-letter counts per group. Nothing is created or changed.
//
// A JetStream consumer is shared by every process of a group, so the
// server cannot say which process holds what: Members is empty and
// Consumers is the number of pull requests waiting at that moment.
func (t *Transport) Inspect(ctx context.Context, opts transports.InspectOptions) (*transports.Inspection, error) {
	if t.isClosed() {
		return nil, transports.ErrClosed
	}
	wantEvent := func(e string) bool { return len(opts.Events) == 0 || slices.Contains(opts.Events, e) }
	wantGroup := func(g string) bool { return len(opts.Groups) == 0 || slices.Contains(opts.Groups, g) }
	out := &transports.Inspection{
		Notes: []string{"nats: a JetStream consumer is shared by the processes of its group; CONSUMERS counts the pull requests waiting now, and per-process pending is not known"},
	}
	lctx, cancel := t.timeout(ctx)
	defer cancel()
	lister := t.js.ListStreams(lctx, jetstream.WithStreamListSubject(t.opts.Prefix+".>"))
	var infos []*jetstream.StreamInfo
	for si := range lister.Info() {
		infos = append(infos, si)
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("nats: inspect: list streams: %w", err)
	}
	now := time.Now()
	seen := map[string]bool{}
	for _, si := range infos {
		event, ok := t.opts.eventOfStream(si.Config.Name)
		if !ok || !wantEvent(event) {
			continue
		}
		sinfo := transports.StreamInfo{Event: event, Key: si.Config.Name, Length: int64(si.State.Msgs)}
		if si.State.Msgs > 0 {
			sinfo.LastEntryAt = si.State.LastTime
		}
		s, err := t.js.Stream(lctx, si.Config.Name)
		if err != nil {
			return nil, fmt.Errorf("nats: inspect %s: %w", si.Config.Name, err)
		}
		cl := s.ListConsumers(lctx)
		for ci := range cl.Info() {
			if ci.Config.Durable == "" {
				continue // ordered consumers of tails
			}
			sinfo.Groups++
			group := groupOfConsumer(ci.Name)
			if !wantGroup(group) {
				continue
			}
			seen[group] = true
			gi := transports.GroupInfo{
				Group:     group,
				Event:     event,
				Queue:     si.Config.Name + " > " + ci.Name,
				Consumers: ci.NumWaiting,
				Pending:   int64(ci.NumAckPending),
				Lag:       int64(ci.NumPending),
			}
			if ci.NumAckPending > 0 {
				gi.OldestPending = transports.Unknown
				if m, err := t.getMsg(ctx, s, ci.AckFloor.Stream+1, jetstream.WithGetMsgSubject(t.opts.Subject(event))); err == nil {
					gi.OldestPending = max(now.Sub(m.Time), 0)
				}
			}
			out.Groups = append(out.Groups, gi)
		}
		if err := cl.Err(); err != nil {
			return nil, fmt.Errorf("nats: inspect %s: list consumers: %w", si.Config.Name, err)
		}
		out.Streams = append(out.Streams, sinfo)
	}
	if err := t.inspectDead(ctx, out, seen, wantEvent, wantGroup); err != nil {
		return nil, err
	}
	slices.SortFunc(out.Streams, func(a, b transports.StreamInfo) int { return strings.Compare(a.Event, b.Event) })
	slices.SortFunc(out.Groups, func(a, b transports.GroupInfo) int {
		if c := strings.Compare(a.Event, b.Event); c != 0 {
			return c
		}
		return strings.Compare(a.Group, b.Group)
	})
	return out, nil
}

// inspectDead fills in the dead-letter counts, adding the groups that only
// have dead letters left.
func (t *Transport) inspectDead(ctx context.Context, out *transports.Inspection, seen map[string]bool, wantEvent, wantGroup func(string) bool) error {
	s, err := t.deadStream(ctx)
	if s == nil || err != nil {
		return err
	}
	counts, err := t.deadCounts(ctx, s, t.opts.Prefix+"._dead.>")
	if err != nil {
		return err
	}
	prefix := t.opts.DeadSubject("")
	for subject, n := range counts {
		token, ok := strings.CutPrefix(subject, prefix)
		group := groupOfConsumer(token)
		if !ok || seen[group] || !wantGroup(group) {
			continue
		}
		gi := transports.GroupInfo{Group: group}
		if m, err := t.getMsg(ctx, s, 1, jetstream.WithGetMsgSubject(subject)); err == nil {
			gi.Event = first(m.Header, HeaderDeadTopic)
		}
		if !wantEvent(gi.Event) {
			continue
		}
		gi.DeadLetters = int64(n)
		out.Groups = append(out.Groups, gi)
	}
	for i := range out.Groups {
		if n, ok := counts[t.opts.DeadSubject(out.Groups[i].Group)]; ok {
			out.Groups[i].DeadLetters = int64(n)
		}
	}
	return nil
}
