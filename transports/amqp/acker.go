package amqp

import (
	"sort"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// ackLinger is how long the engine holds acks back to send them as one
// multiple ack, as a hand-written consumer does: it sends them once half
// the prefetch window is settled (the other half keeps deliveries coming)
// or after ackLinger, whichever comes first (driver.Capabilities
// AckWindow). Without it a consumer at 16 deliveries in flight sent
// about one ack frame per delivery (one write system call each, and
// per-frame work for the broker); with it about 0.4 writes per delivery.
// 2 ms measured best at concurrency 16 (1 ms: 5% more broker CPU per
// event; 4 ms: the held acks shut the window, slower; docs/benchmarks.md).
const ackLinger = 2 * time.Millisecond

// tracker keeps the deliveries of one consumer channel in tag order until
// they are settled, and sends settlements with as few frames as it can:
// when every delivery up to tag T is settled, one basic.ack with
// multiple=true covers them all, which saves the broker and the client
// most of their per-ack work. Deliveries settled out of order are acked
// on their own in the same flush, so a slow handler never holds the acks
// of the others back. Nacks (back to the queue) are sent first, so that a
// multiple ack never covers a delivery being nacked. It is not safe for
// concurrent use: its owner locks around it.
type tracker struct {
	entries []ackEntry // tracked deliveries in tag order, not yet sent
	settled int        // entries settled and not sent
}

type ackState uint8

const (
	statePending ackState = iota // handed out or queued, not settled
	stateAck                     // to be acked
	stateNack                    // to be nacked, back to the queue
)

type ackEntry struct {
	tag   uint64
	state ackState
}

// track registers a delivery; deliveries are tracked in the order the
// channel delivered them.
func (t *tracker) track(tag uint64) {
	t.entries = append(t.entries, ackEntry{tag: tag})
}

// mark records the settlement of tag; false when tag is not tracked or
// already settled.
func (t *tracker) mark(tag uint64, s ackState) bool {
	i := sort.Search(len(t.entries), func(i int) bool { return t.entries[i].tag >= tag })
	if i < len(t.entries) && t.entries[i].tag == tag && t.entries[i].state == statePending {
		t.entries[i].state = s
		t.settled++
		return true
	}
	return false
}

// flush sends every settlement marked so far on ch: the settled prefix of
// the tracked deliveries as one multiple ack, everything else on its own.
// It returns the first error of the channel.
func (t *tracker) flush(ch *amqp091.Channel) error {
	if t.settled == 0 {
		return nil
	}
	var upTo uint64
	var single []ackEntry
	n := 0
	for n < len(t.entries) && t.entries[n].state != statePending {
		if e := t.entries[n]; e.state == stateAck {
			upTo = e.tag
		} else {
			single = append(single, e)
		}
		n++
	}
	kept := t.entries[:0]
	for _, e := range t.entries[n:] {
		if e.state == statePending {
			kept = append(kept, e)
		} else {
			single = append(single, e)
		}
	}
	clear(t.entries[len(kept):])
	t.entries = kept
	t.settled = 0
	var first error
	keep := func(err error) {
		if first == nil {
			first = err
		}
	}
	for _, e := range single {
		if e.state == stateNack {
			keep(ch.Nack(e.tag, false, true))
		}
	}
	for _, e := range single {
		if e.state == stateAck {
			keep(ch.Ack(e.tag, false))
		}
	}
	if upTo > 0 {
		keep(ch.Ack(upTo, true))
	}
	return first
}
