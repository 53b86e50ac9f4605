package memory

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// DefaultMaxLen is the number of entries kept per event stream.
const DefaultMaxLen = 100_000

// Broker holds the streams, groups and dead letters of one in-memory broker.
// All methods are safe for concurrent use.
type Broker struct {
	mu      sync.Mutex
	streams map[string]*stream
	dead    map[string][]deadEntry
	deadSeq uint64
	maxLen  int
	changed chan struct{} // closed and replaced on a change once somebody took it
	watched bool          // Changed handed out the current channel
	now     func() time.Time
	// clock is the last time read by append, settle or take: a lower
	// bound of now, cheap to read, that stamps deliveries of new entries
	// (appended no later than clock). Idle time that decides a claim is
	// measured from an exact time: a release (nack, close) reads the clock.
	clock time.Time

	records recordBook // the RecordStore capability (records.go)
	// sched holds the events waiting for their due time (schedule.go).
	sched schedule
}

// NewBroker returns an empty broker that keeps at most maxLen entries per
// event (DefaultMaxLen when maxLen <= 0).
func NewBroker(maxLen int) *Broker {
	if maxLen <= 0 {
		maxLen = DefaultMaxLen
	}
	return &Broker{
		streams: map[string]*stream{},
		dead:    map[string][]deadEntry{},
		maxLen:  maxLen,
		changed: make(chan struct{}),
		now:     time.Now,
	}
}

type entry struct {
	seq uint64
	msg stored
	at  time.Time
}

// stored is an immutable copy of a message: copied on the way in and out.
// The metadata is kept as key, value pairs: one allocation, and cheaper
// to copy into each delivered message than a map.
type stored struct {
	uuid    string
	payload []byte
	kv      []string
}

// store copies m's metadata; the payload is shared (Watermill's rule: a
// message must not be changed after Publish).
func store(m *message.Message) stored {
	kv := make([]string, 0, 2*len(m.Metadata))
	for k, v := range m.Metadata {
		kv = append(kv, k, v)
	}
	return stored{uuid: m.UUID, payload: m.Payload, kv: kv}
}

// message returns a new message with its own copy of the metadata.
func (s stored) message() *message.Message {
	m := message.NewMessage(s.uuid, s.payload)
	for i := 0; i+1 < len(s.kv); i += 2 {
		m.Metadata[s.kv[i]] = s.kv[i+1]
	}
	return m
}

type group struct {
	name    string
	stream  *stream
	cursor  uint64 // seq of the next entry never delivered to the group
	pending map[uint64]*pendingEntry
	unheld  int // pending entries not handed out to a live subscription
	// replaySeq numbers entries replayed from dead letters; they live
	// only in pending, in a sequence space above every stream entry.
	replaySeq uint64
	// waiters are the slots of live subscriptions that found nothing to
	// take and wait for a change, most recent last.
	waiters   []*slot
	consumers map[string]*consumer
}

type consumer struct {
	name     string
	open     int // live subscriptions
	lastSeen time.Time
}

type pendingEntry struct {
	seq        uint64
	msg        stored
	consumer   string
	deliveries int
	delivered  time.Time // last delivery (idle time is measured from here)
	readyAt    time.Time // not before (after a nack)
	held       bool      // handed out to a live subscription
}

type deadEntry struct {
	id       string
	group    string
	topic    string
	reason   string
	attempts int
	at       time.Time
	msg      stored
}

// notifyLocked wakes everything waiting for a change of the broker.
func (b *Broker) notifyLocked() {
	if b.watched {
		close(b.changed)
		b.changed = make(chan struct{})
		b.watched = false
	}
}

// wakeLocked wakes up to n waiting slots (all of them when n < 0): n new
// entries need at most n takers, so an append does not wake every slot.
// The most recent waiter goes first, its goroutine the likeliest to be warm.
func (g *group) wakeLocked(n int) {
	for n != 0 && len(g.waiters) > 0 {
		sl := g.waiters[len(g.waiters)-1]
		g.waiters[len(g.waiters)-1] = nil
		g.waiters = g.waiters[:len(g.waiters)-1]
		sl.waiting = false
		select {
		case sl.wake <- struct{}{}:
		default: // a token is already there
		}
		n--
	}
}

// addWaiterLocked makes sl wait for the group's next change.
func (g *group) addWaiterLocked(sl *slot) {
	sl.waiting = true
	g.waiters = append(g.waiters, sl)
}

// removeWaiterLocked takes sl off the waiters when it woke for another reason.
func (g *group) removeWaiterLocked(sl *slot) {
	if !sl.waiting {
		return
	}
	sl.waiting = false
	if i := slices.Index(g.waiters, sl); i >= 0 {
		g.waiters = slices.Delete(g.waiters, i, i+1)
	}
}

func (b *Broker) streamLocked(name string) *stream {
	s := b.streams[name]
	if s == nil {
		s = &stream{name: name, first: 1, next: 1, groups: map[string]*group{}}
		b.streams[name] = s
	}
	return s
}

// append adds messages to a stream, trims it and wakes its groups.
func (b *Broker) append(topic string, msgs []*message.Message) {
	// Copy outside the lock, which slots and other publishers wait for.
	var one [1]stored
	copies := one[:0]
	if len(msgs) > 1 {
		copies = make([]stored, 0, len(msgs))
	}
	for _, m := range msgs {
		copies = append(copies, store(m))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.streamLocked(topic)
	now := b.now() // under the lock: entry times never go back
	b.clock = now
	for _, c := range copies {
		s.push(c, now)
	}
	if excess := s.length() - b.maxLen; excess > 0 {
		s.trim(excess)
	}
	for _, g := range s.groups {
		if g.cursor < s.first {
			g.cursor = s.first
		}
		g.wakeLocked(len(msgs))
	}
	b.notifyLocked()
}

// groupLocked returns the group, creating it at since's position.
func (b *Broker) groupLocked(topic, name string, since sinceSpec) *group {
	s := b.streamLocked(topic)
	g := s.groups[name]
	if g != nil {
		return g
	}
	g = &group{
		name: name, stream: s, pending: map[uint64]*pendingEntry{},
		consumers: map[string]*consumer{}, replaySeq: 1 << 62,
	}
	switch {
	case since.beginning:
		g.cursor = s.first
	case !since.at.IsZero():
		g.cursor = s.first + uint64(s.search(since.at))
	default:
		g.cursor = s.next
	}
	s.groups[name] = g
	b.notifyLocked()
	return g
}

type sinceSpec struct {
	beginning bool
	at        time.Time
}

// take picks the next entry for consumer c of group g, in order of
// preference: its own pending entries that are ready (own pending first,
// and nacked entries whose delay passed), entries of other consumers idle
// longer than ackTimeout (claim), then new entries. It returns nil and the
// time at which something may become available (zero: wait for a change).
func (b *Broker) takeLocked(g *group, c *consumer, ackTimeout time.Duration) (*pendingEntry, time.Time) {
	now := b.clock
	var next time.Time
	soonest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if g.unheld > 0 {
		now = b.now()
		b.clock = now
		var own, claim *pendingEntry
		for _, pe := range g.pending {
			if pe.held {
				continue
			}
			if pe.consumer == c.name {
				if !pe.readyAt.After(now) {
					if own == nil || pe.seq < own.seq {
						own = pe
					}
				} else {
					soonest(pe.readyAt)
				}
				continue
			}
			at := pe.delivered.Add(ackTimeout)
			if pe.readyAt.After(at) {
				at = pe.readyAt
			}
			if !at.After(now) {
				if claim == nil || pe.seq < claim.seq {
					claim = pe
				}
			} else {
				soonest(at)
			}
		}
		if own == nil {
			own = claim
		}
		if own != nil {
			b.deliverLocked(own, c, now)
			g.unheld--
			return own, time.Time{}
		}
	}
	s := g.stream
	if g.cursor < s.first {
		g.cursor = s.first
	}
	if e, ok := s.get(g.cursor); ok {
		g.cursor++
		pe := &pendingEntry{seq: e.seq, msg: e.msg}
		g.pending[e.seq] = pe
		b.deliverLocked(pe, c, now)
		return pe, time.Time{}
	}
	return nil, next
}

func (b *Broker) deliverLocked(pe *pendingEntry, c *consumer, now time.Time) {
	pe.consumer = c.name
	pe.deliveries++
	pe.delivered = now
	pe.readyAt = time.Time{}
	pe.held = true
	c.lastSeen = now
}

// settleLocked finishes a handed-out entry: acked removes it; otherwise it
// is released (pending for its consumer), ready again after retryAfter.
// Only a release makes something new to take for the other slots.
func (b *Broker) settleLocked(g *group, pe *pendingEntry, acked bool, retryAfter time.Duration) {
	if cur := g.pending[pe.seq]; cur != pe || !pe.held {
		return
	}
	if acked {
		delete(g.pending, pe.seq)
	} else {
		now := b.now()
		b.clock = now
		pe.held = false
		pe.delivered = now // idle from here: the consumer held it until now
		g.unheld++
		if retryAfter > 0 {
			pe.readyAt = now.Add(retryAfter)
		}
		g.wakeLocked(-1)
	}
	b.notifyLocked()
}

// DeadLetter stores msg in group's dead-letter list.
func (b *Broker) deadLetter(group, topic string, msg *message.Message, reason string, attempts int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.deadSeq++
	b.dead[group] = append(b.dead[group], deadEntry{
		id: strconv.FormatUint(b.deadSeq, 10), group: group, topic: topic, reason: reason,
		attempts: attempts, at: b.now(), msg: store(msg),
	})
	b.notifyLocked()
}

// replay moves a dead letter back into its group as a fresh pending entry
// that any consumer can take at once.
func (b *Broker) replay(groupName, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	list := b.dead[groupName]
	i := slices.IndexFunc(list, func(d deadEntry) bool { return d.id == id })
	if i < 0 {
		return fmt.Errorf("memory: no dead letter %q in group %q", id, groupName)
	}
	d := list[i]
	s := b.streams[d.topic]
	var g *group
	if s != nil {
		g = s.groups[groupName]
	}
	if g == nil {
		return fmt.Errorf("memory: group %q of %s does not exist", groupName, d.topic)
	}
	g.replaySeq++
	g.pending[g.replaySeq] = &pendingEntry{seq: g.replaySeq, msg: d.msg}
	g.unheld++
	b.dead[groupName] = slices.Delete(list, i, i+1)
	g.wakeLocked(-1)
	b.notifyLocked()
	return nil
}
