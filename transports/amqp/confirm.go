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
	slot *confirmSlot
	err  error
	sent chan struct{}
}

// maxSendBatch is the most publish calls one batch of the sender takes.
const maxSendBatch = 256

type confirmSlot struct {
	mu     sync.Mutex
	owner  *amqp091.Connection
	ch     *amqp091.Channel
	closed chan *amqp091.Error
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
func (p *confirmPool) dialer(timeout time.Duration) func(network, addr string) (net.Conn, error) {
	return corkingDialer(timeout, &p.corkMu, &p.cork)
}

// start starts the sender on conn.
func (p *confirmPool) start(conn *connection) {
	p.conn = conn
	go p.sender()
}

// channel returns the slot's open confirm channel on conn, opening one if needed.
func (s *confirmSlot) channel(conn *amqp091.Connection) (*amqp091.Channel, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil && s.owner == conn && !s.ch.IsClosed() {
		return s.ch, nil
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("amqp: open publish channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("amqp: enable publisher confirms: %w", err)
	}
	s.owner, s.ch, s.reason = conn, ch, nil
	s.closed = ch.NotifyClose(make(chan *amqp091.Error, 1))
	return ch, nil
}

// closeReason returns the error that closed the slot's channel, if any.
func (s *confirmSlot) closeReason() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reason == nil && s.closed != nil {
		select {
		case e, ok := <-s.closed:
			if ok && e != nil {
				s.reason = e
			} else {
				s.reason = amqp091.ErrClosed
			}
		default:
		}
	}
	return s.reason
}

// publish sends every publishing to exchange with routing key key and
// returns once the broker confirmed all of them. ctx bounds the send and
// the wait; without a deadline the pool's confirm timeout applies.
func (p *confirmPool) publish(ctx context.Context, exchange, key string, pubs ...amqp091.Publishing) error {
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
	// stopped is never taken.
	select {
	case <-r.sent:
	case <-p.done:
		select {
		case <-r.sent:
		default:
			return transports.ErrClosed
		}
	}
	if r.err != nil {
		return r.err
	}
	for _, dc := range r.dcs {
		acked, err := dc.WaitContext(ctx)
		if err != nil {
			return fmt.Errorf("%w: waiting for the confirm of a publish to %q: %w", ErrNotConfirmed, exchange, err)
		}
		if !acked {
			if reason := r.slot.closeReason(); reason != nil {
				return fmt.Errorf("%w: publish to %q with key %q: %w", ErrNotConfirmed, exchange, key, reason)
			}
			return fmt.Errorf("%w: the broker nacked a publish to %q with key %q", ErrNotConfirmed, exchange, key)
		}
	}
	return nil
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
	ch, err := slot.channel(conn)
	if err != nil {
		fail(lost(conn, err))
		return
	}
	p.corkMu.Lock()
	cork := p.cork
	p.corkMu.Unlock()
	if len(batch) == 1 && len(batch[0].pubs) == 1 {
		cork = nil // one publish is one write anyway
	}
	if cork != nil {
		cork.cork()
	}
	for _, r := range batch {
		r.slot = slot
		dcs := make([]*amqp091.DeferredConfirmation, 0, len(r.pubs))
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

// close stops the sender (publishes queued meanwhile fail with
// transports.ErrClosed) and closes the channels.
func (p *confirmPool) close() {
	p.once.Do(func() {
		close(p.stop)
		if p.conn != nil {
			<-p.done
		}
	})
	for _, s := range p.slots {
		s.mu.Lock()
		if s.ch != nil && !s.ch.IsClosed() {
			_ = s.ch.Close()
		}
		s.ch = nil
		s.mu.Unlock()
	}
}
