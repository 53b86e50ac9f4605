package memory

import (
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
)

// Changed returns a channel that is closed at the next change of the broker
// (an event fired, acked, nacked, dead-lettered, a group created). Take a
// new channel after each change; it is how waiters avoid polling.
func (b *Broker) Changed() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.watched = true
	return b.changed
}

// Idle reports whether every group has been delivered every event and holds
// no pending entry: everything fired was acknowledged or dead-lettered, and
// no scheduled event is due (one due counts from its due time, even before
// the timer moved it into its stream).
func (b *Broker) Idle() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dueLocked() {
		return false
	}
	for _, s := range b.streams {
		for _, g := range s.groups {
			if g.cursor < s.next || len(g.pending) > 0 {
				return false
			}
		}
	}
	return true
}

// Messages returns copies of the entries retained in the stream of topic, oldest first.
func (b *Broker) Messages(topic string) []*message.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.streams[topic]
	if s == nil {
		return nil
	}
	out := make([]*message.Message, s.length())
	for i := range out {
		out[i] = s.at(i).msg.message()
	}
	return out
}

// Topics returns the names of the streams.
func (b *Broker) Topics() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, 0, len(b.streams))
	for name := range b.streams {
		out = append(out, name)
	}
	return out
}

// GroupInfo describes one consumer group of a stream.
type GroupInfo struct {
	Topic     string
	Group     string
	Pending   int // delivered, not acknowledged
	Lag       int // retained entries never delivered to the group
	Consumers []ConsumerInfo
}

// ConsumerInfo describes one consumer of a group.
type ConsumerInfo struct {
	Name    string
	Pending int
	Open    int // live subscriptions
	Idle    time.Duration
}

// Groups returns the consumer groups of topic.
func (b *Broker) Groups(topic string) []GroupInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.streams[topic]
	if s == nil {
		return nil
	}
	now := b.now()
	var out []GroupInfo
	for _, g := range s.groups {
		gi := GroupInfo{Topic: topic, Group: g.name, Pending: len(g.pending), Lag: int(s.next - max(g.cursor, s.first))}
		per := map[string]int{}
		for _, pe := range g.pending {
			per[pe.consumer]++
		}
		for _, c := range g.consumers {
			gi.Consumers = append(gi.Consumers, ConsumerInfo{Name: c.name, Pending: per[c.name], Open: c.open, Idle: now.Sub(c.lastSeen)})
		}
		out = append(out, gi)
	}
	return out
}

// RemoveIdleConsumers deletes the consumers of group on topic that have no
// live subscription, were idle longer than idle and hold no pending entry.
// A consumer that still holds pending entries is never removed.
func (b *Broker) RemoveIdleConsumers(topic, group string, idle time.Duration) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.streams[topic]
	if s == nil || s.groups[group] == nil {
		return nil
	}
	g := s.groups[group]
	now := b.now()
	held := map[string]bool{}
	for _, pe := range g.pending {
		held[pe.consumer] = true
	}
	var removed []string
	for name, c := range g.consumers {
		if c.open == 0 && !held[name] && now.Sub(c.lastSeen) > idle {
			delete(g.consumers, name)
			removed = append(removed, name)
		}
	}
	return removed
}

// DeadLetters returns up to limit dead letters of group, oldest first (limit <= 0: all).
func (b *Broker) DeadLetters(group string, limit int) []transports.DeadLetter {
	b.mu.Lock()
	defer b.mu.Unlock()
	list := b.dead[group]
	if limit > 0 && len(list) > limit {
		list = list[:limit]
	}
	out := make([]transports.DeadLetter, len(list))
	for i, d := range list {
		out[i] = transports.DeadLetter{
			ID: d.id, Group: d.group, Reason: d.reason, Attempts: d.attempts,
			DeadAt: d.at, Topic: d.topic, Message: d.msg.message(),
		}
	}
	return out
}

// DeadLetterGroups returns the groups that have dead letters.
func (b *Broker) DeadLetterGroups() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for g, list := range b.dead {
		if len(list) > 0 {
			out = append(out, g)
		}
	}
	return out
}

// PurgeDeadLetters removes every dead letter of group and returns how many.
func (b *Broker) PurgeDeadLetters(group string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.dead[group])
	delete(b.dead, group)
	b.notifyLocked()
	return n
}
