package amqp

import (
	"context"
	"net"
	"sync"
	"time"
)

// corkConn is the network connection under an AMQP connection. amqp091
// flushes its buffer after every frame it sends (a publish, an ack), one
// write system call each; while corked, those writes gather here instead,
// and uncork sends them in one write. The publisher corks around a batch of
// publishes, so that the broker reads the batch in one go (and confirms it
// together); a consumer corks around a flush of settlements. Writes of
// other kinds (heartbeats, channel methods) that come while it is corked go
// out with the batch. Corks nest: the writes gathered leave when the last
// cork is undone, so consumers of one connection may cork concurrently.
type corkConn struct {
	net.Conn
	mu    sync.Mutex
	corks int // cork calls not yet undone by uncork
	buf   []byte
}

// Write buffers p while corked, else writes it through.
func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.corks > 0 {
		c.buf = append(c.buf, p...)
		c.mu.Unlock()
		return len(p), nil
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// cork makes writes gather until the matching uncork.
func (c *corkConn) cork() {
	c.mu.Lock()
	c.corks++
	c.mu.Unlock()
}

// uncork undoes one cork; the last one writes what gathered in one write.
// When that write fails, the connection is closed, so that amqp091 (which
// counted those bytes as written) sees the loss and fails what waits on it.
func (c *corkConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corks = max(c.corks-1, 0)
	if c.corks > 0 || len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	if cap(c.buf) > 1<<20 {
		c.buf = nil // do not keep a burst's buffer for ever
	} else {
		c.buf = c.buf[:0]
	}
	if err != nil {
		_ = c.Conn.Close()
	}
	return err
}

// netDialer makes the network connection under an AMQP connection; ctx
// aborts the connect (see Transport.dialWith for the handshakes).
type netDialer func(ctx context.Context, network, addr string) (net.Conn, error)

// dialTCP dials as amqp091's default dialer does: the connect bounded by
// timeout, and a deadline of timeout for the TLS and AMQP handshakes, which
// amqp091 clears once connected. ctx aborts the connect.
func dialTCP(ctx context.Context, timeout time.Duration, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return conn, nil
}

// corkingDialer dials TCP as dialTCP does and keeps the latest connection
// it made in *last, as soon as it is connected (before the handshakes).
func corkingDialer(timeout time.Duration, mu *sync.Mutex, last **corkConn) netDialer {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dialTCP(ctx, timeout, network, addr)
		if err != nil {
			return nil, err
		}
		c := &corkConn{Conn: conn}
		mu.Lock()
		*last = c
		mu.Unlock()
		return c, nil
	}
}
