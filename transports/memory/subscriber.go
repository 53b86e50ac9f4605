package memory

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
)

// Subscriber reads as one consumer of one group. Each Subscribe call starts
// one subscription with Concurrency slot goroutines, stopped by the context
// or by Close.
type Subscriber struct {
	t   *Transport
	cfg transports.SubscriberConfig

	mu         sync.Mutex
	closed     bool
	closingCtx context.Context // done once Close is called
	closing    <-chan struct{} // closingCtx.Done()
	closeCtx   context.CancelFunc
	isClosed   atomic.Bool    // Close was called; read without a channel operation
	wg         sync.WaitGroup // slot goroutines
}

// Subscribe creates the group if needed (at cfg.Since) and returns the
// channel of messages. The channel is closed once ctx is done or the
// subscriber is closed.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, transports.ErrClosed
	}
	b := s.t.broker
	b.mu.Lock()
	g := b.groupLocked(topic, s.cfg.Group, toSince(s.cfg.Since))
	c := g.consumers[s.cfg.Consumer]
	if c == nil {
		c = &consumer{name: s.cfg.Consumer}
		g.consumers[s.cfg.Consumer] = c
	}
	c.open++
	c.lastSeen = b.now()
	b.clock = c.lastSeen
	b.mu.Unlock()

	n := s.cfg.Concurrency
	// The channel holds up to Concurrency messages: a slot hands its
	// message over without waiting for a reader, and a reader that finishes
	// one finds the next without waiting for a slot. Every message in it
	// is held by its slot, so at most Concurrency are out at any time.
	sub := &subscription{s: s, g: g, c: c, topic: topic, out: make(chan *message.Message, n)}
	sub.senders.Store(int32(n))
	// stop is done when reading stops (ctx) or the subscriber closes: one
	// channel for the slots to watch; isClosed tells the two apart.
	stop, cancel := context.WithCancel(ctx)
	unwatch := context.AfterFunc(s.closingCtx, cancel)
	sub.release = func() {
		unwatch()
		cancel()
	}
	sub.running.Store(int32(n))
	s.wg.Add(n)
	for range n {
		sl := &slot{sub: sub, wake: make(chan struct{}, 1)}
		go sl.run(stop)
	}
	return sub.out, nil
}

// Close stops every subscription. Acks and nacks made before Close are
// applied; messages handed out and not settled stay pending for this
// consumer, to be taken again by a consumer with the same name at once, or
// by another after AckTimeout.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.isClosed.Store(true)
	s.closeCtx()
	s.mu.Unlock()
	s.wg.Wait()
	s.t.forget(s)
	return nil
}

// subscription is one Subscribe call: Concurrency slots feeding one channel.
type subscription struct {
	s       *Subscriber
	g       *group
	c       *consumer // kept in the group while the subscription is open
	topic   string
	out     chan *message.Message
	senders atomic.Int32 // slots that may still send on out
	running atomic.Int32 // slots not yet returned
	release func()       // frees the stop context once every slot returned
}

// stopSending is called once by each slot when it will send no more; the
// last one closes the channel and marks the consumer's subscription gone.
func (sub *subscription) stopSending() {
	if sub.senders.Add(-1) != 0 {
		return
	}
	b := sub.s.t.broker
	b.mu.Lock()
	sub.c.open--
	sub.c.lastSeen = b.now()
	b.mu.Unlock()
	close(sub.out)
}

// slot is one of a subscription's Concurrency places for a message in
// flight, run by one goroutine: it takes an entry, hands it out, waits for
// its ack or nack, then settles it and takes the next entry under the same
// broker lock. Concurrency slots hand out up to Concurrency messages
// without waiting for acks; a message is settled only once the consumer
// acked or nacked it (or released, unsettled, when the subscriber closes).
type slot struct {
	sub     *subscription
	wake    chan struct{} // a token when the group may have an entry to take
	waiting bool          // in group.waiters; guarded by the broker lock
	timer   *time.Timer   // for entries that become ready later (nack delay, claim)
}

// settlement is what the slot applies at its next broker lock.
type settlement struct {
	pe         *pendingEntry
	acked      bool
	retryAfter time.Duration
}

// run is the slot's loop. stop is done when reading stops or the
// subscriber closes; after reading stops, a message still out can be acked
// or nacked until the subscriber closes.
func (sl *slot) run(stop context.Context) {
	sub := sl.sub
	s, b, g := sub.s, sub.s.t.broker, sub.g
	consumer, ackTimeout := sub.c, s.cfg.AckTimeout
	sending := true
	defer s.wg.Done()
	defer func() {
		if sending {
			sub.stopSending()
		}
		if sl.timer != nil {
			sl.timer.Stop()
		}
		if sub.running.Add(-1) == 0 {
			sub.release()
		}
	}()
	var done settlement
	for {
		b.mu.Lock()
		if done.pe != nil {
			b.settleLocked(g, done.pe, done.acked, done.retryAfter)
			done = settlement{}
		}
		g.removeWaiterLocked(sl)
		if stop.Err() != nil {
			// The slot may have been woken for an entry it will not
			// take: pass the wake on.
			g.wakeLocked(1)
			b.mu.Unlock()
			return
		}
		pe, next := b.takeLocked(g, consumer, ackTimeout)
		attempt := 0
		if pe == nil {
			g.addWaiterLocked(sl)
		} else {
			attempt = pe.deliveries
			if g.cursor < g.stream.next {
				// More new entries than woken slots took (the slot may
				// have taken an older one instead): wake another.
				g.wakeLocked(1)
			}
		}
		b.mu.Unlock()

		if pe == nil {
			sl.wait(stop, next)
			continue
		}
		msg := pe.msg.message()
		info := &transports.DeliveryInfo{Attempt: attempt, Topic: sub.topic, Group: g.name}
		msg.SetContext(transports.WithDeliveryInfo(context.Background(), info))
		select {
		case sub.out <- msg: // room in the channel: the common case
		default:
			select {
			case sub.out <- msg:
			case <-stop.Done():
				done = settlement{pe: pe}
				continue
			}
		}
		select {
		case <-msg.Acked():
			done = settlement{pe: pe, acked: true}
		case <-msg.Nacked():
			done = settlement{pe: pe, retryAfter: retryAfter(info)}
		case <-stop.Done():
			if !s.isClosed.Load() {
				// Reading stopped: send nothing more, but the message
				// handed out can still be acked or nacked until the
				// subscriber closes.
				sending = false
				sub.stopSending()
				select {
				case <-msg.Acked():
				case <-msg.Nacked():
				case <-s.closing:
				}
			}
			done = settled(msg, info, pe)
		}
	}
}

// wait blocks until the group wakes the slot, next passes (when not zero),
// or stop is done.
func (sl *slot) wait(stop context.Context, next time.Time) {
	var tc <-chan time.Time
	if !next.IsZero() {
		d := time.Until(next)
		if sl.timer == nil {
			sl.timer = time.NewTimer(d)
		} else {
			sl.timer.Reset(d)
		}
		tc = sl.timer.C
	}
	select {
	case <-sl.wake:
	case <-tc:
	case <-stop.Done():
	}
}

// settled is the settlement of a message still out when the subscriber
// closes: its ack or nack if one was made, otherwise a release that leaves
// it pending for this consumer.
func settled(msg *message.Message, info *transports.DeliveryInfo, pe *pendingEntry) settlement {
	select {
	case <-msg.Acked():
		return settlement{pe: pe, acked: true}
	case <-msg.Nacked():
		return settlement{pe: pe, retryAfter: retryAfter(info)}
	default:
		return settlement{pe: pe}
	}
}

// retryAfter is the consumer's delay, or the default backoff: a nack never
// makes a hot loop.
func retryAfter(info *transports.DeliveryInfo) time.Duration {
	if info.RetryAfter > 0 {
		return info.RetryAfter
	}
	return transports.DefaultRetryAfter(info.Attempt)
}
