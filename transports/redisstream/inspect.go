package redisstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/transports"
)

var _ transports.Inspector = (*Transport)(nil)

// Inspect implements transports.Inspector with read-only commands: SCAN for
// the streams under the prefix (or the events named in opts), XLEN, XINFO
// GROUPS (pending, lag), XINFO CONSUMERS, XPENDING (the oldest pending
// entry), XLEN of the dead-letter streams and SCAN for the liveness keys
// of open subscriptions. Nothing is created or changed.
func (t *Transport) Inspect(ctx context.Context, opts transports.InspectOptions) (*transports.Inspection, error) {
	events, deadGroups, err := t.inspectKeys(ctx, opts.Events)
	if err != nil {
		return nil, err
	}
	wantGroup := func(g string) bool { return len(opts.Groups) == 0 || slices.Contains(opts.Groups, g) }
	now, err := t.client.Time(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstream: inspect: TIME: %w", err)
	}
	out := &transports.Inspection{}
	seen := map[string]bool{}
	for _, event := range events {
		si, groups, err := t.inspectStream(ctx, event, now, wantGroup)
		if err != nil {
			return nil, err
		}
		if si == nil {
			continue
		}
		out.Streams = append(out.Streams, *si)
		for _, g := range groups {
			seen[g.Group] = true
		}
		out.Groups = append(out.Groups, groups...)
	}
	// Before the groups that only have dead letters left: no subscription
	// reads those, whatever liveness key a killed process left.
	if err := t.markLive(ctx, out.Groups); err != nil {
		return nil, err
	}
	for _, g := range deadGroups {
		if seen[g] || !wantGroup(g) {
			continue
		}
		gi := transports.GroupInfo{Group: g}
		// The event of a group that only has dead letters left: from its oldest one.
		if first, err := t.client.XRangeN(ctx, t.DeadLetterKey(g), "-", "+", 1).Result(); err == nil && len(first) > 0 {
			gi.Event, _ = first[0].Values[fieldTopic].(string)
		}
		if len(opts.Events) > 0 && !slices.Contains(opts.Events, gi.Event) {
			continue
		}
		out.Groups = append(out.Groups, gi)
	}
	if err := t.countDeadLetters(ctx, out.Groups); err != nil {
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

// inspectKeys returns the events whose streams exist (those named, or
// every stream under the prefix) and the groups that have a dead-letter stream.
func (t *Transport) inspectKeys(ctx context.Context, named []string) (events, deadGroups []string, err error) {
	deadPrefix := t.DeadLetterKey("")
	var keys []string
	if len(named) > 0 {
		for _, e := range named {
			keys = append(keys, t.StreamKey(e))
		}
		keys = append(keys, t.scanKeys(ctx, deadPrefix, &err)...)
	} else {
		keys = t.scanKeys(ctx, t.opts.Prefix, &err)
	}
	if err != nil {
		return nil, nil, err
	}
	for _, k := range keys {
		// No event or group name holds a ':': a key that does is under a
		// longer prefix (another deployment's "{prefix}eu:"), not ours.
		if g, ok := strings.CutPrefix(k, deadPrefix); ok {
			if !strings.Contains(g, ":") {
				deadGroups = append(deadGroups, g)
			}
		} else if e, ok := strings.CutPrefix(k, t.opts.Prefix); ok && !strings.Contains(e, ":") {
			events = append(events, e)
		}
	}
	slices.Sort(events)
	slices.Sort(deadGroups)
	return slices.Compact(events), slices.Compact(deadGroups), nil
}

// scanKeys returns the stream keys starting with prefix (SCAN ... TYPE stream).
func (t *Transport) scanKeys(ctx context.Context, prefix string, errp *error) []string {
	return t.scan(ctx, prefix, "stream", errp)
}

// scanAll returns the keys of any type starting with prefix.
func (t *Transport) scanAll(ctx context.Context, prefix string, errp *error) []string {
	return t.scan(ctx, prefix, "", errp)
}

// scan returns the keys of type keyType (any when "") starting with prefix.
func (t *Transport) scan(ctx context.Context, prefix, keyType string, errp *error) []string {
	var (
		mu  sync.Mutex // a Cluster scans its masters at once
		out []string
	)
	collect := func(ctx context.Context, c redis.Cmdable) error {
		it := c.ScanType(ctx, 0, globEscape(prefix)+"*", 1000, keyType).Iterator()
		for it.Next(ctx) {
			mu.Lock()
			out = append(out, it.Val())
			mu.Unlock()
		}
		return it.Err()
	}
	var err error
	if cc, ok := t.client.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return collect(ctx, c) })
	} else {
		err = collect(ctx, t.client)
	}
	if err != nil && *errp == nil {
		*errp = fmt.Errorf("redisstream: inspect: scan %s*: %w", prefix, err)
	}
	return out
}

// inspectStream reports one stream and its groups; nil when it does not exist.
func (t *Transport) inspectStream(ctx context.Context, event string, now time.Time, wantGroup func(string) bool) (*transports.StreamInfo, []transports.GroupInfo, error) {
	key := t.StreamKey(event)
	pipe := t.client.Pipeline()
	xlen := pipe.XLen(ctx, key)
	last := pipe.XRevRangeN(ctx, key, "+", "-", 1)
	groups := pipe.XInfoGroups(ctx, key)
	_, _ = pipe.Exec(ctx)
	n, err := xlen.Result()
	if err != nil {
		return nil, nil, fmt.Errorf("redisstream: inspect %s: XLEN: %w", key, err)
	}
	xgs, err := groups.Result()
	if err != nil {
		if isNoSuchKey(err) {
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("redisstream: inspect %s: XINFO GROUPS: %w", key, err)
	}
	si := &transports.StreamInfo{Event: event, Key: key, Length: n, Groups: len(xgs)}
	if l, err := last.Result(); err == nil && len(l) > 0 {
		si.LastEntryAt = idTime(l[0].ID)
	}
	var out []transports.GroupInfo
	for _, xg := range xgs {
		if !wantGroup(xg.Name) {
			continue
		}
		gi := transports.GroupInfo{
			Group: xg.Name, Event: event, Consumers: int(xg.Consumers),
			Pending: xg.Pending, Lag: xg.Lag,
		}
		if gi.Lag < 0 {
			gi.Lag = transports.Unknown
		}
		pipe := t.client.Pipeline()
		consumers := pipe.XInfoConsumers(ctx, key, xg.Name)
		pending := pipe.XPending(ctx, key, xg.Name)
		_, _ = pipe.Exec(ctx)
		cs, err := consumers.Result()
		if err != nil {
			return nil, nil, fmt.Errorf("redisstream: inspect %s group %s: XINFO CONSUMERS: %w", key, xg.Name, err)
		}
		for _, c := range cs {
			gi.Members = append(gi.Members, transports.ConsumerInfo{Name: c.Name, Pending: c.Pending, Idle: c.Idle})
		}
		slices.SortFunc(gi.Members, func(a, b transports.ConsumerInfo) int { return strings.Compare(a.Name, b.Name) })
		if p, err := pending.Result(); err == nil && p.Count > 0 {
			if at := idTime(p.Lower); !at.IsZero() {
				gi.OldestPending = max(now.Sub(at), 0)
			}
		} else if err != nil && !errors.Is(err, redis.Nil) {
			return nil, nil, fmt.Errorf("redisstream: inspect %s group %s: XPENDING: %w", key, xg.Name, err)
		}
		out = append(out, gi)
	}
	return si, out, nil
}

// markLive sets Live on the members of groups that hold an open
// subscription, from the liveness keys, and adds those Redis does not
// list yet: a consumer appears in XINFO CONSUMERS only once it has read,
// and a quiet listener may not have. Consumers counts them too.
func (t *Transport) markLive(ctx context.Context, groups []transports.GroupInfo) error {
	if len(groups) == 0 {
		return nil
	}
	var err error
	prefix := t.opts.Prefix + "live:"
	keys := t.scanAll(ctx, prefix, &err)
	if err != nil {
		return err
	}
	live := map[[2]string]map[string]bool{} // {group, event} -> consumer names
	for _, k := range keys {
		group, event, consumer, ok := parseLiveKey(strings.TrimPrefix(k, prefix))
		if !ok {
			continue
		}
		ge := [2]string{group, event}
		if live[ge] == nil {
			live[ge] = map[string]bool{}
		}
		live[ge][consumer] = true
	}
	for i := range groups {
		g := &groups[i]
		names := live[[2]string{g.Group, g.Event}]
		if len(names) == 0 {
			continue
		}
		for j := range g.Members {
			if names[g.Members[j].Name] {
				g.Members[j].Live = true
				delete(names, g.Members[j].Name)
			}
		}
		for name := range names {
			g.Members = append(g.Members, transports.ConsumerInfo{Name: name, Idle: transports.Unknown, Live: true})
		}
		slices.SortFunc(g.Members, func(a, b transports.ConsumerInfo) int { return strings.Compare(a.Name, b.Name) })
		g.Consumers = max(g.Consumers, len(g.Members))
	}
	return nil
}

// parseLiveKey splits the part of a liveness key after "{prefix}live:",
// "{group}/{event}/{consumer}/{token}"; no group or event name holds a
// '/' or ':', and the token holds neither, so a consumer name may. A key
// that does not fit (another deployment's under a longer prefix) is not ok.
func parseLiveKey(rest string) (group, event, consumer string, ok bool) {
	group, rest, ok1 := strings.Cut(rest, "/")
	event, rest, ok2 := strings.Cut(rest, "/")
	i := strings.LastIndexByte(rest, '/')
	if !ok1 || !ok2 || i <= 0 || strings.ContainsAny(group+event, ":") {
		return "", "", "", false
	}
	return group, event, rest[:i], true
}

// countDeadLetters fills DeadLetters of every group with XLEN of its dead-letter stream.
func (t *Transport) countDeadLetters(ctx context.Context, groups []transports.GroupInfo) error {
	if len(groups) == 0 {
		return nil
	}
	pipe := t.client.Pipeline()
	cmds := make([]*redis.IntCmd, len(groups))
	for i, g := range groups {
		cmds[i] = pipe.XLen(ctx, t.DeadLetterKey(g.Group))
	}
	_, _ = pipe.Exec(ctx)
	for i, c := range cmds {
		n, err := c.Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("redisstream: inspect: XLEN %s: %w", t.DeadLetterKey(groups[i].Group), err)
		}
		groups[i].DeadLetters = n
	}
	return nil
}

// idTime is the time part of a stream entry ID ("1700000000000-0").
func idTime(id string) time.Time {
	ms, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(n)
}

func isNoSuchKey(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no such key")
}

// globEscape escapes the SCAN MATCH pattern characters of s.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
