package amqp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// ErrNotConfirmed is returned when the broker nacked a publish, or the
// channel closed before the broker confirmed it: the message may or may not
// have been stored, and the caller should treat it as not sent.
var ErrNotConfirmed = errors.New("amqp: publish not confirmed by the broker")

// confirmPool is a fixed set of channels in confirm mode on one connection.
// Publishes pick a channel round-robin and pipeline on it: many publishes
// may wait for their confirms on one channel at once. A channel closed by
// an error, or belonging to a lost connection, is reopened on next use.
type confirmPool struct {
	conn    *connection
	timeout time.Duration
	next    atomic.Uint32
	slots   []*confirmSlot
}

type confirmSlot struct {
	mu     sync.Mutex
	owner  *amqp091.Connection
	ch     *amqp091.Channel
	closed chan *amqp091.Error
	reason error
}

func newConfirmPool(conn *connection, size int, timeout time.Duration) *confirmPool {
	p := &confirmPool{conn: conn, timeout: timeout, slots: make([]*confirmSlot, size)}
	for i := range p.slots {
		p.slots[i] = &confirmSlot{}
	}
	return p
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
	conn, err := p.conn.current()
	if err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.timeout)
		defer cancel()
	}
	slot := p.slots[int(p.next.Add(1))%len(p.slots)]
	ch, err := slot.channel(conn)
	if err != nil {
		return lost(conn, err)
	}
	pending := make([]*amqp091.DeferredConfirmation, 0, len(pubs))
	for _, pub := range pubs {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false, pub)
		if err != nil {
			return lost(conn, fmt.Errorf("amqp: publish to %q with key %q: %w", exchange, key, err))
		}
		pending = append(pending, dc)
	}
	for _, dc := range pending {
		acked, err := dc.WaitContext(ctx)
		if err != nil {
			return fmt.Errorf("%w: waiting for the confirm of a publish to %q: %w", ErrNotConfirmed, exchange, err)
		}
		if !acked {
			if reason := slot.closeReason(); reason != nil {
				return fmt.Errorf("%w: publish to %q with key %q: %w", ErrNotConfirmed, exchange, key, reason)
			}
			return fmt.Errorf("%w: the broker nacked a publish to %q with key %q", ErrNotConfirmed, exchange, key)
		}
	}
	return nil
}

// lost marks err with ErrNotConnected when conn has died meanwhile.
func lost(conn *amqp091.Connection, err error) error {
	if conn.IsClosed() && !errors.Is(err, ErrNotConnected) {
		return fmt.Errorf("%w: %w", ErrNotConnected, err)
	}
	return err
}

func (p *confirmPool) close() {
	for _, s := range p.slots {
		s.mu.Lock()
		if s.ch != nil && !s.ch.IsClosed() {
			_ = s.ch.Close()
		}
		s.ch = nil
		s.mu.Unlock()
	}
}
