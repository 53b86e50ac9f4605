package memory

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
)

// DefaultMaxLen is the number of entries kept per event stream.
const DefaultMaxLen = 100_000

// Broker holds the streams, groups and dead letters of one in-memory
// broker. It keeps what Redis Streams keep, and its operations are named
// after the Redis commands they mirror:
//
//	append      XADD ... MAXLEN ~ n
//	createGroup XGROUP CREATE ... MKSTREAM
//	readNew     XREADGROUP GROUP g c COUNT n STREAMS s >
//	pending     XPENDING s g - + n c, then XRANGE for each entry
//	autoClaim   XAUTOCLAIM s g c min-idle start COUNT n JUSTID
//	setCount    XCLAIM s g c 0 id IDLE ms RETRYCOUNT n JUSTID
//	touch       XCLAIM s g c min-idle id JUSTID
//	ack         XACK
//
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
	// replayGroup is set on an entry replayed from a dead-letter list:
	// only that group delivers it, every other group passes it over.
	replayGroup string
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

// group is a consumer group: the position of the next entry it has never
// delivered, and its pending entries list (PEL): entries delivered to a
// consumer and not acknowledged.
type group struct {
	name      string
	stream    *stream
	cursor    uint64                  // seq of the next entry never delivered to the group
	pending   map[uint64]pendingEntry // by value: no allocation per delivery
	consumers map[string]*consumer
}

type consumer struct {
	name     string
	open     int // live subscriptions
	lastSeen time.Time
}

// pendingEntry is one entry of a group's PEL.
type pendingEntry struct {
	seq        uint64
	consumer   string
	deliveries int       // the delivery counter
	delivered  time.Time // last delivery or claim: idle time is measured from here
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

func (b *Broker) streamLocked(name string) *stream {
	s := b.streams[name]
	if s == nil {
		s = &stream{name: name, first: 1, next: 1, groups: map[string]*group{}}
		b.streams[name] = s
	}
	return s
}

// append adds messages to a stream, trims it and wakes its readers (XADD).
func (b *Broker) append(topic string, msgs []*message.Message) {
	// Copy outside the lock, which readers and other publishers wait for;
	// a single message's copy stays on the stack.
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
	b.appendLocked(topic, copies)
}

// appendLocked appends copies to the stream of topic; b.mu is held.
func (b *Broker) appendLocked(topic string, copies []stored) {
	s := b.streamLocked(topic)
	now := b.now()
	for _, c := range copies {
		s.push(c, now, "")
	}
	b.appendedLocked(s)
}

func (b *Broker) appendedLocked(s *stream) {
	if excess := s.length() - b.maxLen; excess > 0 {
		s.trim(excess)
	}
	s.wake()
	b.notifyLocked()
}

// createGroupLocked returns the group, creating it at since's position
// (XGROUP CREATE ... MKSTREAM).
func (b *Broker) createGroupLocked(topic, name string, since sinceSpec) *group {
	s := b.streamLocked(topic)
	g := s.groups[name]
	if g != nil {
		return g
	}
	g = &group{name: name, stream: s, pending: map[uint64]pendingEntry{}, consumers: map[string]*consumer{}}
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

// consumerLocked returns consumer name of g, creating it.
func (g *group) consumerLocked(name string, now time.Time) *consumer {
	c := g.consumers[name]
	if c == nil {
		c = &consumer{name: name}
		g.consumers[name] = c
	}
	c.lastSeen = now
	return c
}

// readNewLocked delivers up to count entries never delivered to the group
// to consumer c, adding each to the PEL with a delivery count of 1
// (XREADGROUP ... >), appending them to out, which it returns. Entries
// replayed for another group are passed over.
func (b *Broker) readNewLocked(g *group, c string, count int, out []entry) []entry {
	s := g.stream
	now := b.now()
	g.consumerLocked(c, now)
	g.cursor = max(g.cursor, s.first)
	out = slices.Grow(out, min(count, int(s.next-g.cursor))) // no-op while out has room
	count += len(out)
	for len(out) < count {
		e, ok := s.get(g.cursor)
		if !ok {
			break
		}
		g.cursor++
		if e.replayGroup != "" && e.replayGroup != g.name {
			b.notifyLocked() // the group may be idle now
			continue
		}
		g.pending[e.seq] = pendingEntry{seq: e.seq, consumer: c, deliveries: 1, delivered: now}
		out = append(out, e)
	}
	return out
}

// pendingLocked returns up to count entries of c's PEL after seq, oldest
// first, with their delivery counts, without counting a delivery
// (XPENDING ... c, then XRANGE). Entries trimmed from the stream while
// pending are acknowledged and skipped.
func (b *Broker) pendingLocked(g *group, c string, after uint64, count int) ([]entry, []int, uint64) {
	var seqs []uint64
	for seq, pe := range g.pending {
		if pe.consumer == c && seq > after {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	var out []entry
	var counts []int
	last := uint64(0)
	for _, seq := range seqs {
		if len(out) == count {
			return out, counts, last
		}
		last = seq
		e, ok := g.stream.get(seq)
		if !ok {
			delete(g.pending, seq) // trimmed while pending
			continue
		}
		out = append(out, e)
		counts = append(counts, g.pending[seq].deliveries)
	}
	return out, counts, 0
}

// autoClaimLocked transfers to c up to count PEL entries, from seq start
// on, idle for at least minIdle, resetting their idle time and keeping
// their delivery counts (XAUTOCLAIM ... JUSTID). Entries trimmed from the
// stream are removed from the PEL and skipped. It returns the entries, their
// counts and the seq to continue from (0 once the scan is complete).
func (b *Broker) autoClaimLocked(g *group, c string, minIdle time.Duration, start uint64, count int) ([]entry, []int, uint64) {
	now := b.now()
	g.consumerLocked(c, now)
	var seqs []uint64
	for seq, pe := range g.pending {
		if seq >= start && now.Sub(pe.delivered) >= minIdle {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	var out []entry
	var counts []int
	for _, seq := range seqs {
		if len(out) == count {
			return out, counts, seq
		}
		pe := g.pending[seq]
		e, ok := g.stream.get(seq)
		if !ok {
			delete(g.pending, seq)
			continue
		}
		pe.consumer, pe.delivered = c, now
		g.pending[seq] = pe
		out = append(out, e)
		counts = append(counts, pe.deliveries)
	}
	return out, counts, 0
}

// setCountLocked gives seq to c with delivery count n, idle for idle
// (XCLAIM ... IDLE ms RETRYCOUNT n JUSTID); idle may be negative: the
// entry is then not claimable until AckTimeout after now-idle.
func (b *Broker) setCountLocked(g *group, c string, seq uint64, n int, idle time.Duration) {
	if pe, ok := g.pending[seq]; ok {
		pe.consumer, pe.deliveries, pe.delivered = c, n, b.now().Add(-idle)
		g.pending[seq] = pe
	}
}

// touchLocked resets the idle time of seq if c still owns it (a keepalive).
func (b *Broker) touchLocked(g *group, c string, seq uint64, now time.Time) {
	if pe, ok := g.pending[seq]; ok && pe.consumer == c {
		pe.delivered = now
		g.pending[seq] = pe
	}
}

// ackLocked removes seq from the PEL (XACK).
func (b *Broker) ackLocked(g *group, seq uint64) {
	delete(g.pending, seq)
}

// deadLetter stores msg in group's dead-letter list.
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

// replay appends a dead letter to its stream again as an entry for its
// group only (the other groups pass it over) and removes it from the list.
func (b *Broker) replay(groupName, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	list := b.dead[groupName]
	i := slices.IndexFunc(list, func(d deadEntry) bool { return d.id == id })
	if i < 0 {
		return fmt.Errorf("%w: memory: no dead letter %q in group %q", transports.ErrNotFound, id, groupName)
	}
	d := list[i]
	s := b.streams[d.topic]
	if s == nil || s.groups[groupName] == nil {
		return transports.GroupNotReading("memory", groupName, d.topic)
	}
	s.push(d.msg, b.now(), groupName)
	b.dead[groupName] = slices.Delete(list, i, i+1)
	b.appendedLocked(s)
	return nil
}
