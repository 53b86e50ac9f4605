package amqp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/busline/busline/transports"
)

// ErrNotConfirmed is returned when the broker nacked a publish, or the
// channel closed before the broker confirmed it: the message may or may not
// have been stored, and the caller should treat it as not sent.
var ErrNotConfirmed = errors.New("amqp: publish not confirmed by the broker")

// confirmPool is a fixed set of channels in confirm mode on one connection,
// and the goroutine that publishes on them. Concurrent publishes are sent
// in batches: the sender takes every request waiting (and those of
// publishers that become runnable meanwhile), publishes them back to back
// on the next channel round-robin with the network connection corked, and
// sends the batch in one write. The same goroutine then watches the
// confirms of what it sent, oldest first, and answers each caller once the
// broker confirmed all of its publishes: a caller waits once, for its
// answer, not once for the send and again for the confirm. A channel
// closed by an error, or belonging to a lost connection, is reopened on
// next use.
type confirmPool struct {
	conn    *connection
	timeout time.Duration
	next    atomic.Uint32
	slots   []*confirmSlot

	reqs chan *confirmReq
	stop chan struct{}
	done chan struct{} // the sender returned
	// answered is closed once every request the sender took is answered
	// (after close resolved those still waiting for confirms).
	answered chan struct{}
	once     sync.Once
	// unconfirmed is what the sender left waiting for confirms when it
	// stopped; close answers them once the channels are closed.
	unconfirmed []*confirmReq

	corkMu sync.Mutex
	cork   *corkConn // the network connection of the latest dial
}

// confirmReq is one publish call handed to the sender.
type confirmReq struct {
	ctx      context.Context
	deadline time.Time // the end of the wait for the broker's confirms
	exchange string
	key      string
	pubs     []amqp091.Publishing
	// Set by the sender before it closes done.
	dcs  []*amqp091.DeferredConfirmation
	dc1  [1]*amqp091.DeferredConfirmation // the dcs of one publishing
	via  *confirmChannel                  // the channel it was published on
	err  error
	done chan struct{}
	// confirmed counts the dcs known to be settled (the sender's).
	confirmed int
}

// maxSendBatch is the most publish calls one batch of the sender takes.
const maxSendBatch = 256

// confirmSlot is one place of the pool: the confirm channel open in it,
// opened again when the one before closed.
type confirmSlot struct {
	mu  sync.Mutex
	cur *confirmChannel
}

// confirmChannel is one confirm channel, and why it closed: kept with what
// was published on it, so that a channel opened again in the same slot
// meanwhile does not hide the reason.
type confirmChannel struct {
	owner  *amqp091.Connection
	ch     *amqp091.Channel
	closed chan *amqp091.Error

	mu     sync.Mutex
	reason error
}

// newConfirmPool returns a pool of size channels. The publishing
// connection dials through its dialer, so that batches are corked (without
// it, every publish is written on its own); start starts its sender.
func newConfirmPool(size int, timeout time.Duration) *confirmPool {
	p := &confirmPool{
		timeout: timeout, slots: make([]*confirmSlot, size),
		reqs: make(chan *confirmReq, maxSendBatch), stop: make(chan struct{}),
		done: make(chan struct{}), answered: make(chan struct{}),
	}
	for i := range p.slots {
		p.slots[i] = &confirmSlot{}
	}
	return p
}

// dialer returns the network dialer of the publishing connection.
func (p *confirmPool) dialer(timeout time.Duration) func(network, addr string) (net.Conn, error) {
	return corkingDialer(timeout, &p.corkMu, &p.cork)
}

// start starts the sender on conn.
func (p *confirmPool) start(conn *connection) {
	p.conn = conn
	go p.sender()
}

// channel returns the slot's open confirm channel on conn, opening one if needed.
func (s *confirmSlot) channel(conn *amqp091.Connection) (*confirmChannel, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.cur; c != nil && c.owner == conn && !c.ch.IsClosed() {
		return c, nil
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("amqp: open publish channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("amqp: enable publisher confirms: %w", err)
	}
	s.cur = &confirmChannel{owner: conn, ch: ch, closed: ch.NotifyClose(make(chan *amqp091.Error, 1))}
	return s.cur, nil
}

// close closes the slot's channel.
func (s *confirmSlot) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil && !s.cur.ch.IsClosed() {
		_ = s.cur.ch.Close()
	}
	s.cur = nil
}

// closeReason returns the error that closed the channel, if it closed.
func (c *confirmChannel) closeReason() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reason == nil {
		select {
		case e, ok := <-c.closed:
			if ok && e != nil {
				c.reason = e
			} else {
				c.reason = amqp091.ErrClosed
			}
		default:
		}
	}
	return c.reason
}

// publish sends every publishing to exchange with routing key key and
// returns once the broker confirmed all of them. ctx bounds the send and
// the wait; without a deadline the pool's confirm timeout applies.
func (p *confirmPool) publish(ctx context.Context, exchange, key string, pubs ...amqp091.Publishing) error {
	if err := checkPublishings(key, pubs); err != nil {
		return err
	}
	deadline, ok := ctx.Deadline()
	var expired <-chan time.Time
	if !ok {
		// The pool's confirm timeout, kept by a timer of the call's own: a
		// sender stuck behind the broker (a channel to open, a socket that
		// takes no more) holds no caller past it.
		deadline = time.Now().Add(p.timeout)
		timer := time.NewTimer(p.timeout)
		defer timer.Stop()
		expired = timer.C
	}
	r := &confirmReq{ctx: ctx, deadline: deadline, exchange: exchange, key: key, pubs: pubs, done: make(chan struct{})}
	select {
	case p.reqs <- r:
	case <-p.stop:
		return transports.ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("amqp: publish to %q with key %q: %w", exchange, key, ctx.Err())
	case <-expired:
		return fmt.Errorf("amqp: publish to %q with key %q: %w", exchange, key, context.DeadlineExceeded)
	}
	// The sender (or close, after it) answers every request it took; one
	// queued after it stopped is never taken.
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for the confirm of a publish to %q: %w", ErrNotConfirmed, exchange, ctx.Err())
	case <-expired:
		return fmt.Errorf("%w: waiting for the confirm of a publish to %q: %w", ErrNotConfirmed, exchange, context.DeadlineExceeded)
	case <-p.answered:
		select {
		case <-r.done:
			return r.err
		default:
			return transports.ErrClosed
		}
	}
}

// sender publishes the requests in batches and answers them as their
// confirms come, until stop; then it fails what is left in the queue and
// leaves the requests still waiting for confirms to close.
func (p *confirmPool) sender() {
	defer close(p.done)
	var w confirmWait
	defer w.stopTimer()
	batch := make([]*confirmReq, 0, maxSendBatch)
	last := 0 // size of the previous batch
	for {
		confirmed, expired, gone := w.watch()
		select {
		case r := <-p.reqs:
			batch = append(batch[:0], r)
			batch = transports.Gather(p.reqs, batch, maxSendBatch, last > 1)
			last = len(batch)
			p.send(batch, &w)
		case <-confirmed:
			w.answer(false)
		case <-expired:
			w.armed = time.Time{}
			w.answer(false)
		case <-gone:
			w.answer(false)
		case <-p.stop:
			for {
				select {
				case r := <-p.reqs:
					r.err = transports.ErrClosed
					close(r.done)
				default:
					w.answer(false)
					p.unconfirmed = w.queue
					return
				}
			}
		}
	}
}

// confirmWait is the sender's queue of published requests waiting for
// their confirms, in publish order. The sender waits for the oldest
// unconfirmed publish of the oldest request (confirms mostly come in
// publish order) and, when it wakes, answers every request it finds
// settled among the oldest (answer). Callers keep their own deadlines;
// the sender's timer only clears requests whose callers gave up.
type confirmWait struct {
	queue []*confirmReq
	timer *time.Timer
	// armed is when the timer fires (zero: it is not set). Deadlines
	// mostly grow in publish order, so the timer is set again only when
	// it fired or the oldest request's deadline comes before it.
	armed time.Time
}

// watch returns what ends the wait of the oldest request: its next
// unconfirmed publish being settled, a deadline, its context. All nil
// when nothing waits.
func (w *confirmWait) watch() (confirmed <-chan struct{}, expired <-chan time.Time, gone <-chan struct{}) {
	if len(w.queue) == 0 {
		return nil, nil, nil
	}
	head := w.queue[0]
	if w.armed.IsZero() || head.deadline.Before(w.armed) {
		d := time.Until(head.deadline)
		if w.timer == nil {
			w.timer = time.NewTimer(d)
		} else {
			w.timer.Reset(d)
		}
		w.armed = head.deadline
	}
	return head.dcs[head.confirmed].Done(), w.timer.C, head.ctx.Done()
}

// stopTimer stops the deadline timer.
func (w *confirmWait) stopTimer() {
	if w.timer != nil {
		w.timer.Stop()
	}
}

// answerScan is how many requests still waiting answer looks at before
// it stops: a request confirmed early (on another channel of the pool) is
// answered as soon as it is within this many of the oldest.
const answerScan = 64

// answer answers the requests whose publishes are all settled, or whose
// wait ended (deadline, context), looking at the oldest ones first and
// stopping after answerScan requests still waiting; the others keep their
// order. With final set it answers every request, the unsettled ones as
// not confirmed (their channels are closed).
func (w *confirmWait) answer(final bool) {
	now := time.Now()
	kept := w.queue[:0]
	for i, r := range w.queue {
		if len(kept) == answerScan && !final {
			kept = append(kept, w.queue[i:]...)
			break
		}
		for r.confirmed < len(r.dcs) && isDone(r.dcs[r.confirmed].Done()) {
			r.confirmed++
		}
		switch {
		case r.confirmed == len(r.dcs):
			r.err = r.outcome()
		case final:
			r.err = fmt.Errorf("%w: publish to %q with key %q: %w", ErrNotConfirmed, r.exchange, r.key, transports.ErrClosed)
		case r.ctx.Err() != nil:
			r.err = fmt.Errorf("%w: waiting for the confirm of a publish to %q: %w", ErrNotConfirmed, r.exchange, r.ctx.Err())
		case !now.Before(r.deadline):
			r.err = fmt.Errorf("%w: waiting for the confirm of a publish to %q: %w", ErrNotConfirmed, r.exchange, context.DeadlineExceeded)
		default:
			kept = append(kept, r)
			continue
		}
		close(r.done)
	}
	clear(w.queue[len(kept):])
	w.queue = kept
}

// isDone reports whether c is closed.
func isDone(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// outcome is the result of a request whose publishes are all settled: nil
// when the broker acked every one.
func (r *confirmReq) outcome() error {
	for _, dc := range r.dcs {
		if dc.Acked() {
			continue
		}
		if reason := r.via.closeReason(); reason != nil {
			return fmt.Errorf("%w: publish to %q with key %q: %w", ErrNotConfirmed, r.exchange, r.key, reason)
		}
		return fmt.Errorf("%w: the broker nacked a publish to %q with key %q", ErrNotConfirmed, r.exchange, r.key)
	}
	return nil
}

// send publishes a batch on one channel with the network connection
// corked; requests published go to w to wait for their confirms, the
// others are answered at once.
func (p *confirmPool) send(batch []*confirmReq, w *confirmWait) {
	defer func() {
		for _, r := range batch {
			if len(r.dcs) == 0 {
				close(r.done)
			} else {
				w.queue = append(w.queue, r)
			}
		}
	}()
	fail := func(err error) {
		for _, r := range batch {
			if r.err == nil && r.dcs == nil {
				r.err = err
			}
		}
	}
	conn, err := p.conn.current()
	if err != nil {
		fail(err)
		return
	}
	slot := p.slots[int(p.next.Add(1))%len(p.slots)]
	via, err := slot.channel(conn)
	if err != nil {
		fail(lost(conn, err))
		return
	}
	ch := via.ch
	p.corkMu.Lock()
	cork := p.cork
	p.corkMu.Unlock()
	if len(batch) == 1 && len(batch[0].pubs) == 1 {
		cork = nil // one publish is one write anyway
	}
	if cork != nil {
		cork.cork()
	}
	now := time.Now()
	for _, r := range batch {
		r.via = via
		if !now.Before(r.deadline) { // its caller gave up: never sent
			r.err = fmt.Errorf("amqp: publish to %q with key %q: %w", r.exchange, r.key, context.DeadlineExceeded)
			continue
		}
		dcs := r.dc1[:0]
		if len(r.pubs) > 1 {
			dcs = make([]*amqp091.DeferredConfirmation, 0, len(r.pubs))
		}
		for _, pub := range r.pubs {
			dc, err := ch.PublishWithDeferredConfirmWithContext(r.ctx, r.exchange, r.key, false, false, pub)
			if err != nil {
				r.err = lost(conn, fmt.Errorf("amqp: publish to %q with key %q: %w", r.exchange, r.key, err))
				break
			}
			dcs = append(dcs, dc)
		}
		if r.err == nil {
			r.dcs = dcs
		}
	}
	if cork != nil {
		if err := cork.uncork(); err != nil {
			// What was published in this batch never left: its confirms
			// will fail with the connection; fail the callers now.
			for _, r := range batch {
				if r.dcs != nil {
					r.dcs = nil
					r.err = fmt.Errorf("%w: publish to %q with key %q: %w", ErrNotConnected, r.exchange, r.key, err)
				}
			}
		}
	}
}

// lost marks err with ErrNotConnected when conn has died meanwhile.
func lost(conn *amqp091.Connection, err error) error {
	if conn.IsClosed() && !errors.Is(err, ErrNotConnected) {
		return fmt.Errorf("%w: %w", ErrNotConnected, err)
	}
	return err
}

// close stops the sender (publishes queued meanwhile fail with
// transports.ErrClosed), closes the channels, and answers the publishes
// that were waiting for confirms: those the broker confirmed before its
// channel closed succeed, the others fail with ErrNotConfirmed.
func (p *confirmPool) close() {
	p.once.Do(func() {
		close(p.stop)
		if p.conn != nil {
			<-p.done
		}
		p.closeChannels()
		w := confirmWait{queue: p.unconfirmed}
		w.answer(true)
		p.unconfirmed = nil
		close(p.answered)
	})
}

// closeChannels closes the pool's channels.
func (p *confirmPool) closeChannels() {
	for _, s := range p.slots {
		s.close()
	}
}
