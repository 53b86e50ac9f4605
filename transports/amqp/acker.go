package amqp

import (
	"log/slog"
	"sort"
	"sync"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// acker settles the deliveries of one consumer channel. Acks are coalesced:
// when every delivery up to tag T is settled, one basic.ack with
// multiple=true covers them, which saves the broker most of its per-ack
// work. A delivery acked behind one still in a handler is acked on its own
// after stuckAfter, or once half the window waits, so a slow handler never
// holds the prefetch window of the others. Nacks are sent on their own.
// Only the acker's goroutine writes acks and nacks, so that a coalesced ack
// never covers a delivery that is being nacked.
type acker struct {
	ch     *amqp091.Channel
	log    *slog.Logger
	window int // a flush is due once this many acks wait behind the head

	mu      sync.Mutex
	entries []ackEntry // tracked deliveries in tag order, not yet released
	kick    chan struct{}
	quit    chan struct{}
	done    chan struct{}
}

type ackState uint8

const (
	statePending ackState = iota // handed out or queued, not settled
	stateAck                     // to be acked
	stateNack                    // to be nacked with requeue
	stateSent                    // settled on its own already
)

type ackEntry struct {
	tag   uint64
	state ackState
	since time.Time // when it was settled
}

// stuckAfter is how long an ack may wait behind an unsettled delivery
// before it is sent on its own.
const stuckAfter = 20 * time.Millisecond

func newAcker(ch *amqp091.Channel, window int, log *slog.Logger) *acker {
	a := &acker{
		ch: ch, log: log, window: max(1, window/2),
		kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
	}
	go a.run()
	return a
}

// track registers a delivery; deliveries are tracked in the order the
// channel delivered them.
func (a *acker) track(tag uint64) {
	a.mu.Lock()
	a.entries = append(a.entries, ackEntry{tag: tag})
	a.mu.Unlock()
}

// ack schedules the ack of tag.
func (a *acker) ack(tag uint64) { a.settle(tag, stateAck) }

// nack schedules a nack of tag that puts it back in the queue.
func (a *acker) nack(tag uint64) { a.settle(tag, stateNack) }

func (a *acker) settle(tag uint64, s ackState) {
	a.mu.Lock()
	i := sort.Search(len(a.entries), func(i int) bool { return a.entries[i].tag >= tag })
	if i < len(a.entries) && a.entries[i].tag == tag && a.entries[i].state == statePending {
		a.entries[i].state = s
		a.entries[i].since = time.Now()
	}
	a.mu.Unlock()
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

func (a *acker) run() {
	defer close(a.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-a.kick:
		case <-timer.C:
		case <-a.quit:
			a.flush(true)
			return
		}
		if wait := a.flush(false); wait > 0 {
			timer.Reset(wait)
		}
	}
}

// flush sends what is due and returns how long until stuck acks are due
// (0: nothing waits). With all, every settled delivery is sent.
func (a *acker) flush(all bool) time.Duration {
	a.mu.Lock()
	var single []ackEntry
	// Release the settled prefix: acks there are covered by one multiple ack.
	var upTo uint64
	n := 0
	for n < len(a.entries) && a.entries[n].state != statePending {
		e := a.entries[n]
		switch e.state {
		case stateAck:
			upTo = e.tag
		case stateNack:
			single = append(single, e)
		}
		n++
	}
	a.entries = a.entries[n:]
	// Acks behind the head are sent on their own when they waited too long,
	// when too many wait, or on close.
	now := time.Now()
	var next time.Duration
	behind := 0
	for _, e := range a.entries {
		if e.state == stateAck || e.state == stateNack {
			behind++
		}
	}
	for i := range a.entries {
		e := &a.entries[i]
		if e.state != stateAck && e.state != stateNack {
			continue
		}
		age := now.Sub(e.since)
		if all || e.state == stateNack || behind >= a.window || age >= stuckAfter {
			single = append(single, *e)
			e.state = stateSent
		} else if d := stuckAfter - age; next == 0 || d < next {
			next = d
		}
	}
	a.mu.Unlock()
	// Singles first: a nack must reach the broker before a multiple ack
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
	return next
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
