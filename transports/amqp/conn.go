package amqp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/busline/busline/transports"
)

// ErrNotConnected is returned by operations that need the broker while the
// connection is down (between a connection loss and the reconnection).
var ErrNotConnected = errors.New("amqp: not connected to the broker")

// connection keeps one AMQP connection open: it dials with backoff after a
// loss until it is closed, or until its ctx is done. Its loop goroutine is
// owned by close.
type connection struct {
	name string
	// ctx ends the dialling: it is given to every dial (which it aborts,
	// see Transport.dialWith), and once it is done no reconnection starts
	// and wait no longer waits for one. A connection open meanwhile is
	// left alone: close closes it.
	ctx    context.Context
	dial   func(ctx context.Context, name string) (*amqp091.Connection, error)
	log    *slog.Logger
	maxGap time.Duration

	mu      sync.Mutex
	conn    *amqp091.Connection
	ready   chan struct{} // closed while conn is usable; replaced on loss
	closing chan struct{}
	done    chan struct{}
	stop    sync.Once // closes closing
	once    sync.Once
}

// openConnection dials once (an error is returned at once, so that a wrong
// URL fails at Open) and then keeps the connection alive in the background.
// Every dial, the first one included, is given ctx: a dial aborted by it
// fails with an error wrapping context.Cause(ctx).
func openConnection(ctx context.Context, name string, dial func(context.Context, string) (*amqp091.Connection, error), maxGap time.Duration, log *slog.Logger) (*connection, error) {
	first, err := dial(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("amqp: connect: %w", accessRefused(err))
	}
	c := &connection{
		name: name, ctx: ctx, dial: dial, log: log, maxGap: maxGap,
		conn: first, ready: make(chan struct{}), closing: make(chan struct{}), done: make(chan struct{}),
	}
	close(c.ready)
	go c.keep(first)
	return c, nil
}

// keep waits for the loss of conn, then reconnects with backoff, until close
// or until ctx is done.
func (c *connection) keep(conn *amqp091.Connection) {
	defer close(c.done)
	for {
		lost := conn.NotifyClose(make(chan *amqp091.Error, 1))
		select {
		case <-c.closing:
			return
		case err := <-lost:
			c.mu.Lock()
			c.conn = nil
			c.ready = make(chan struct{})
			c.mu.Unlock()
			c.log.Warn("amqp: connection lost; reconnecting", slog.String("connection", c.name), slog.Any("error", err))
		}
		var ok bool
		if conn, ok = c.redial(); !ok {
			return
		}
		c.mu.Lock()
		c.conn = conn
		close(c.ready)
		c.mu.Unlock()
		c.log.Info("amqp: reconnected", slog.String("connection", c.name))
	}
}

// redial dials until it succeeds (true), or the connection is closed or
// its ctx done (false): ctx also aborts the dial under way.
func (c *connection) redial() (*amqp091.Connection, bool) {
	gap := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		select {
		case <-c.closing:
			return nil, false
		case <-c.ctx.Done():
			return nil, false
		default:
		}
		conn, err := c.dial(c.ctx, c.name)
		if err == nil {
			return conn, true
		}
		wait := gap/2 + rand.N(gap/2+1)
		c.log.Debug("amqp: reconnect failed", slog.String("connection", c.name), slog.Int("attempt", attempt),
			slog.Duration("retry_in", wait), slog.Any("error", err))
		t := time.NewTimer(wait)
		select {
		case <-c.closing:
			t.Stop()
			return nil, false
		case <-c.ctx.Done():
			t.Stop()
			return nil, false
		case <-t.C:
		}
		gap = min(2*gap, c.maxGap)
	}
}

// current returns the live connection, or ErrNotConnected while it is down.
func (c *connection) current() (*amqp091.Connection, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.closing:
		return nil, transports.ErrClosed
	default:
	}
	if c.conn == nil || c.conn.IsClosed() {
		return nil, ErrNotConnected
	}
	return c.conn, nil
}

// wait returns the live connection, waiting for a reconnection while it is
// down, until ctx is done or the connection is closed; once the
// connection's own ctx is done (no reconnection comes), a connection that
// is down is transports.ErrClosed at once.
func (c *connection) wait(ctx context.Context) (*amqp091.Connection, error) {
	for {
		c.mu.Lock()
		conn, ready := c.conn, c.ready
		c.mu.Unlock()
		if conn != nil && !conn.IsClosed() {
			return conn, nil
		}
		select {
		case <-ready:
			if conn == nil {
				continue
			}
			// The connection was lost but keep has not noticed yet.
			t := time.NewTimer(10 * time.Millisecond)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-c.closing:
				t.Stop()
				return nil, transports.ErrClosed
			case <-c.ctx.Done():
				t.Stop()
				return nil, transports.ErrClosed
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.closing:
			return nil, transports.ErrClosed
		case <-c.ctx.Done():
			return nil, transports.ErrClosed
		}
	}
}

// stopReconnecting makes a loss of the connection final, and current
// return transports.ErrClosed: close follows.
func (c *connection) stopReconnecting() {
	c.stop.Do(func() { close(c.closing) })
}

// close stops reconnecting and closes the connection; channels opened on it
// are closed by the broker, returning their unacknowledged deliveries.
func (c *connection) close() error {
	var err error
	c.stopReconnecting()
	c.once.Do(func() {
		<-c.done
		c.mu.Lock()
		conn := c.conn
		c.conn = nil
		c.mu.Unlock()
		if conn != nil && !conn.IsClosed() {
			// Bounded: a broker that stopped reading (an alarm) never
			// answers the close handshake.
			if cerr := conn.CloseDeadline(time.Now().Add(closeHandshake)); cerr != nil && !errors.Is(cerr, amqp091.ErrClosed) {
				err = fmt.Errorf("amqp: close connection %s: %w", c.name, cerr)
			}
		}
	})
	return err
}

// accessRefused marks err with transports.ErrAccessRefused when the broker
// refused the connection's credentials (ACCESS_REFUSED) or the user's
// access to the virtual host (NOT_ALLOWED "access to vhost ... refused"),
// and with transports.ErrInvalidConfig when the virtual host does not
// exist (NOT_ALLOWED "vhost ... not found").
func accessRefused(err error) error {
	var ae *amqp091.Error
	switch {
	case !errors.As(err, &ae):
	case ae.Code == amqp091.AccessRefused,
		ae.Code == amqp091.NotAllowed && strings.Contains(ae.Reason, "refused"):
		return fmt.Errorf("%w: %w", transports.ErrAccessRefused, err)
	case ae.Code == amqp091.NotAllowed && strings.Contains(ae.Reason, "vhost") && strings.Contains(ae.Reason, "not found"):
		// "vhost x not found": a fix of the URL, not a wait.
		return fmt.Errorf("%w: %w", transports.ErrInvalidConfig, err)
	}
	return err
}
