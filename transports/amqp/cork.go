package amqp

import (
	"net"
	"sync"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// corkConn is the network connection under the publishing AMQP connection.
// amqp091 flushes its buffer after every publish, one write system call
// each; while corked, those writes gather here instead, and uncork sends
// them in one write. The publisher corks around a batch of publishes, so
// that the broker reads the batch in one go (and confirms it together).
// Writes of other kinds (heartbeats, channel methods) that come while it is
// corked go out with the batch.
type corkConn struct {
	net.Conn
	mu     sync.Mutex
	corked bool
	buf    []byte
}

// Write buffers p while corked, else writes it through.
func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.corked {
		c.buf = append(c.buf, p...)
		c.mu.Unlock()
		return len(p), nil
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// cork makes writes gather until uncork.
func (c *corkConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// uncork writes what gathered since cork in one write. When that write
// fails, the connection is closed, so that amqp091 (which counted those
// bytes as written) sees the loss and fails what waits on it.
func (c *corkConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	if len(c.buf) == 0 {
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

// corkingDialer dials TCP as amqp091's default dialer does (timeout, and a
// deadline for the handshake that amqp091 clears once connected) and keeps
// the latest connection it made in *last.
func corkingDialer(timeout time.Duration, mu *sync.Mutex, last **corkConn) func(network, addr string) (net.Conn, error) {
	dial := amqp091.DefaultDial(timeout)
	return func(network, addr string) (net.Conn, error) {
		conn, err := dial(network, addr)
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
