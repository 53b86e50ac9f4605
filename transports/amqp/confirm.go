package amqp

import (
	"context"
	"errors"
	"fmt"
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
// sends the batch in one write; each caller then waits for its own
// confirms, while the next batch goes out. A channel closed by an error,
// or belonging to a lost connection, is reopened on next use.
type confirmPool struct {
	conn    *connection
	timeout time.Duration
	next    atomic.Uint32
	slots   []*confirmSlot

	reqs chan *confirmReq
	stop chan struct{}
	done chan struct{}
	once sync.Once

	corkMu sync.Mutex
	cork   *corkConn // the network connection of the latest dial
}

// confirmReq is one publish call handed to the sender.
type confirmReq struct {
	ctx      context.Context
	exchange string
	key      string
	pubs     []amqp091.Publishing
	// Set by the sender before it closes sent.
	dcs  []*amqp091.DeferredConfirmation
	via  *confirmChannel // the channel it was published on
	err  error
	sent chan struct{}
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
		reqs: make(chan *confirmReq, maxSendBatch), stop: make(chan struct{}), done: make(chan struct{}),
	}
	for i := range p.slots {
		p.slots[i] = &confirmSlot{}
	}
	return p
}

// dialer returns the network dialer of the publishing connection.
func (p *confirmPool) dialer(timeout time.Duration) netDialer {
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
	return p.publishInto(ctx, nil, exchange, key, pubs...)
}

// publishEach is publish that also reports which publishings the broker
// confirmed (confirmed[i]), for a caller that settles each on its own when
// some failed; err says why one was not, nil when every one was confirmed.
func (p *confirmPool) publishEach(ctx context.Context, exchange, key string, pubs ...amqp091.Publishing) (confirmed []bool, err error) {
	confirmed = make([]bool, len(pubs))
	return confirmed, p.publishInto(ctx, confirmed, exchange, key, pubs...)
}

// publishInto is publish, recording in confirmed, when not nil, which
// publishings the broker confirmed.
func (p *confirmPool) publishInto(ctx context.Context, confirmed []bool, exchange, key string, pubs ...amqp091.Publishing) error {
	if err := checkPublishings(key, pubs); err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.timeout)
		defer cancel()
	}
	r := &confirmReq{ctx: ctx, exchange: exchange, key: key, pubs: pubs, sent: make(chan struct{})}
	select {
	case p.reqs <- r:
	case <-p.stop:
		return transports.ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("amqp: publish to %q with key %q: %w", exchange, key, ctx.Err())
	}
	// The sender answers every request it took; one queued after it
	// stopped is never taken. A sender stuck behind the broker (a channel
	// to open, a socket that takes no more) holds no caller past its
	// deadline, and does not send a request whose deadline passed.
	select {
	case <-r.sent:
	case <-p.done:
		select {
		case <-r.sent:
		default:
			return transports.ErrClosed
		}
	case <-ctx.Done():
		return fmt.Errorf("%w: publish to %q with key %q: %w", ErrNotConfirmed, exchange, key, ctx.Err())
	}
	// r.dcs holds the publishings sent, also when a later one failed (r.err).
	err := r.err
	for i, dc := range r.dcs {
		acked, werr := dc.WaitContext(ctx)
		switch {
		case werr != nil: // no more waiting: take the confirms already in
			for j := i; j < len(r.dcs) && confirmed != nil; j++ {
				confirmed[j] = r.dcs[j].Acked()
			}
			if err == nil {
				err = fmt.Errorf("%w: waiting for the confirm of a publish to %q: %w", ErrNotConfirmed, exchange, werr)
			}
			return err
		case acked:
			if confirmed != nil {
				confirmed[i] = true
			}
		case err == nil:
			if reason := r.via.closeReason(); reason != nil {
				err = fmt.Errorf("%w: publish to %q with key %q: %w", ErrNotConfirmed, exchange, key, reason)
			} else {
				err = fmt.Errorf("%w: the broker nacked a publish to %q with key %q", ErrNotConfirmed, exchange, key)
			}
		}
	}
	return err
}

// sender publishes the requests in batches until stop, then fails what
// is left in the queue.
func (p *confirmPool) sender() {
	defer close(p.done)
	batch := make([]*confirmReq, 0, maxSendBatch)
	last := 0 // size of the previous batch
	for {
		select {
		case r := <-p.reqs:
			batch = append(batch[:0], r)
		case <-p.stop:
			for {
				select {
				case r := <-p.reqs:
					r.err = transports.ErrClosed
					close(r.sent)
				default:
					return
				}
			}
		}
		batch = transports.Gather(p.reqs, batch, maxSendBatch, last > 1)
		last = len(batch)
		p.send(batch)
	}
}

// send publishes a batch on one channel with the network connection
// corked, and answers every request of it.
func (p *confirmPool) send(batch []*confirmReq) {
	defer func() {
		for _, r := range batch {
			close(r.sent)
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
	cork := p.latestCork()
	if len(batch) == 1 && len(batch[0].pubs) == 1 {
		cork = nil // one publish is one write anyway
	}
	if cork != nil {
		cork.cork()
	}
	for _, r := range batch {
		r.via = via
		dcs := make([]*amqp091.DeferredConfirmation, 0, len(r.pubs))
		for _, pub := range r.pubs {
			dc, err := ch.PublishWithDeferredConfirmWithContext(r.ctx, r.exchange, r.key, false, false, pub)
			if err != nil {
				r.err = lost(conn, fmt.Errorf("amqp: publish to %q with key %q: %w", r.exchange, r.key, err))
				break
			}
			dcs = append(dcs, dc)
		}
		r.dcs = dcs
	}
	if cork != nil {
		if err := cork.uncork(); err != nil {
			// What was published in this batch never left: its confirms
			// will fail with the connection; fail the callers now.
			for _, r := range batch {
				r.dcs = nil // none was confirmed
				if r.err == nil {
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

// close stops the sender; publishes queued meanwhile fail with
// transports.ErrClosed. The channels are left to the publishing
// connection's close: closing each one waits for the broker, which may
// have stopped reading (Transport.Close).
func (p *confirmPool) close() {
	p.once.Do(func() {
		close(p.stop)
		if p.conn != nil {
			<-p.done
		}
	})
}

// latestCork returns the network connection of the publishing
// connection's latest dial (nil before the first).
func (p *confirmPool) latestCork() *corkConn {
	p.corkMu.Lock()
	defer p.corkMu.Unlock()
	return p.cork
}
