package amqp

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/busline/busline/transports"
)

// recordConn is a net.Conn that records each Write.
type recordConn struct {
	net.Conn
	writes [][]byte
	err    error
	closed bool
}

func (c *recordConn) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

func (c *recordConn) Close() error { c.closed = true; return nil }

// TestCorkGathersWrites: writes while corked leave in one write at uncork;
// writes otherwise go through at once.
func TestCorkGathersWrites(t *testing.T) {
	rc := &recordConn{}
	c := &corkConn{Conn: rc}
	_, _ = c.Write([]byte("a"))
	c.cork()
	for _, s := range []string{"b", "c", "d"} {
		if n, err := c.Write([]byte(s)); n != 1 || err != nil {
			t.Fatalf("corked write = %d, %v", n, err)
		}
	}
	if len(rc.writes) != 1 {
		t.Fatalf("writes before uncork: %q", rc.writes)
	}
	if err := c.uncork(); err != nil {
		t.Fatal(err)
	}
	if err := c.uncork(); err != nil { // nothing gathered: no write
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("e"))
	want := []string{"a", "bcd", "e"}
	if len(rc.writes) != len(want) {
		t.Fatalf("writes %q, want %q", rc.writes, want)
	}
	for i, w := range want {
		if string(rc.writes[i]) != w {
			t.Fatalf("writes %q, want %q", rc.writes, want)
		}
	}
}

// TestCorksNest: with two corks (two consumers flushing settlements on one
// connection), the writes gather until the second uncork.
func TestCorksNest(t *testing.T) {
	rc := &recordConn{}
	c := &corkConn{Conn: rc}
	c.cork()
	_, _ = c.Write([]byte("a"))
	c.cork()
	_, _ = c.Write([]byte("b"))
	if err := c.uncork(); err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("c"))
	if len(rc.writes) != 0 {
		t.Fatalf("writes before the last uncork: %q", rc.writes)
	}
	if err := c.uncork(); err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("d"))
	if len(rc.writes) != 2 || string(rc.writes[0]) != "abc" || string(rc.writes[1]) != "d" {
		t.Fatalf("writes %q, want [abc d]", rc.writes)
	}
}

// TestUncorkFailureClosesTheConnection: when the gathered write fails, the
// connection is closed so that amqp091 sees the loss.
func TestUncorkFailureClosesTheConnection(t *testing.T) {
	rc := &recordConn{}
	c := &corkConn{Conn: rc}
	c.cork()
	_, _ = c.Write([]byte("x"))
	rc.err = errors.New("broken pipe")
	if err := c.uncork(); err == nil || !rc.closed {
		t.Fatalf("uncork = %v, closed %v", err, rc.closed)
	}
}

// TestPublishAfterPoolClose: a publish after the pool closed returns
// transports.ErrClosed rather than waiting for a sender that is gone.
func TestPublishAfterPoolClose(t *testing.T) {
	p := newConfirmPool(1, time.Minute)
	p.start(&connection{})
	p.close()
	for range 10 { // either select branch of publish
		if err := p.publish(context.Background(), "x", "k"); !errors.Is(err, transports.ErrClosed) {
			t.Fatalf("publish after close = %v", err)
		}
	}
}
