package amqp

import (
	"log/slog"
	"sort"
	"sync"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// ackLinger is how long the acker may hold acks back to send them as one
// while other deliveries of the channel are still being handled.
const ackLinger = 500 * time.Microsecond

// acker settles the deliveries of one consumer channel, coalescing acks:
// when every delivery up to tag T is settled, one basic.ack with
// multiple=true covers them all, which saves the broker and the client
// most of their per-ack work. While other deliveries are in handlers it
// lingers up to ackLinger (or until half the window is settled) to gather
// more; when nothing else is in flight it sends at once, so a listener
// with Concurrency 1 is not slowed down. Deliveries settled out of order
// are acked on their own in the same flush, so that a slow handler never
// holds the acks of the others back. Nacks are sent on their own.
//
// Only the acker's goroutine sends acks and nacks on the channel, in
// order, so a multiple ack never covers a delivery being nacked.
type acker struct {
	ch     *amqp091.Channel
	log    *slog.Logger
	window int // a flush is due once this many settlements wait

	mu      sync.Mutex
	entries []ackEntry // tracked deliveries in tag order, not yet sent
	settled int        // entries settled and not sent
	kick    chan struct{}
	quit    chan struct{}
	done    chan struct{}
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

func newAcker(ch *amqp091.Channel, window int, log *slog.Logger) *acker {
	a := &acker{
		ch: ch, log: log, window: max(1, window/2),
		kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
	}
	go a.run()
	return a
}

// track registers a delivery. Deliveries are tracked in the order the
// channel delivered them, before they are settled.
func (a *acker) track(tag uint64) {
	a.mu.Lock()
	a.entries = append(a.entries, ackEntry{tag: tag})
	a.mu.Unlock()
}

// ack schedules the ack of tag.
func (a *acker) ack(tag uint64) { a.settle(tag, stateAck) }

// nack schedules a nack of tag that puts the message back in the queue.
func (a *acker) nack(tag uint64) { a.settle(tag, stateNack) }

func (a *acker) settle(tag uint64, s ackState) {
	a.mu.Lock()
	i := sort.Search(len(a.entries), func(i int) bool { return a.entries[i].tag >= tag })
	if i < len(a.entries) && a.entries[i].tag == tag && a.entries[i].state == statePending {
		a.entries[i].state = s
		a.settled++
	}
	a.mu.Unlock()
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// due reports whether the settlements should be sent now rather than
// gathered a little longer.
func (a *acker) due() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.settled >= a.window || a.settled == len(a.entries)
}

func (a *acker) run() {
	defer close(a.done)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	lingering := false
	for {
		select {
		case <-a.kick:
			if !a.due() {
				if !lingering {
					linger.Reset(ackLinger)
					lingering = true
				}
				continue
			}
		case <-linger.C:
		case <-a.quit:
			a.flush()
			return
		}
		if lingering {
			linger.Stop()
			lingering = false
		}
		a.flush()
	}
}

// flush sends every settlement made so far: the settled prefix of the
// tracked deliveries as one multiple ack, everything else on its own.
func (a *acker) flush() {
	a.mu.Lock()
	if a.settled == 0 {
		a.mu.Unlock()
		return
	}
	var upTo uint64
	var single []ackEntry
	n := 0
	for n < len(a.entries) && a.entries[n].state != statePending {
		if e := a.entries[n]; e.state == stateAck {
			upTo = e.tag
		} else {
			single = append(single, e)
		}
		n++
	}
	kept := a.entries[:0]
	for _, e := range a.entries[n:] {
		if e.state == statePending {
			kept = append(kept, e)
		} else {
			single = append(single, e)
		}
	}
	clear(a.entries[len(kept):])
	a.entries = kept
	a.settled = 0
	a.mu.Unlock()
	// Nacks go first: a nack must reach the broker before a multiple ack
	// whose range includes its tag.
	for _, e := range single {
		var err error
		if e.state == stateNack {
			err = a.ch.Nack(e.tag, false, true)
		} else {
			err = a.ch.Ack(e.tag, false)
		}
		if err != nil {
			a.log.Debug("amqp: settle failed; the broker returns the delivery to the queue", slog.Uint64("tag", e.tag), slog.Any("error", err))
		}
	}
	if upTo > 0 {
		if err := a.ch.Ack(upTo, true); err != nil {
			a.log.Debug("amqp: ack failed; the broker returns the deliveries to the queue", slog.Uint64("up_to", upTo), slog.Any("error", err))
		}
	}
}

// close sends every settlement made so far and stops the acker.
// Deliveries not settled stay unacknowledged.
func (a *acker) close() {
	select {
	case <-a.quit:
	default:
		close(a.quit)
	}
	<-a.done
}
