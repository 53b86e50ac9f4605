package amqp

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/busline/busline/transports"
)

// stallingListener forwards its first connections to the test broker and
// takes the later ones without ever answering: to a client, a broker that
// accepts the TCP connection and never begins the AMQP handshake. stalled
// receives a value for each connection it holds so. Everything is closed
// when the test ends.
type stallingListener struct {
	addr    string
	stalled chan struct{}
}

// startStallingListener starts a stallingListener that forwards the first
// forward connections.
func startStallingListener(t *testing.T, forward int) *stallingListener {
	t.Helper()
	u, err := url.Parse(brokerURL())
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	if u.Port() == "" {
		target += ":5672"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &stallingListener{addr: ln.Addr().String(), stalled: make(chan struct{}, 16)}
	var (
		mu     sync.Mutex
		conns  []net.Conn
		closed bool
		wg     sync.WaitGroup
	)
	track := func(c net.Conn) { // closed at once after the cleanup
		mu.Lock()
		defer mu.Unlock()
		if closed {
			_ = c.Close()
		}
		conns = append(conns, c)
	}
	wg.Go(func() {
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			track(c)
			if n >= forward {
				select {
				case s.stalled <- struct{}{}:
				default:
				}
				continue
			}
			server, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				_ = c.Close()
				continue
			}
			track(server)
			for _, pair := range [][2]net.Conn{{c, server}, {server, c}} {
				wg.Go(func() {
					_, _ = io.Copy(pair[0], pair[1])
					_ = pair[0].Close()
					_ = pair[1].Close()
				})
			}
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return s
}

// url returns the broker URL with the listener's address.
func (s *stallingListener) url(t *testing.T) string {
	u, err := url.Parse(brokerURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Host = s.addr
	return u.String()
}

// The first consumer connection is dialled under the transport's lock,
// when the first subscriber is made. Against a broker that accepts the
// TCP connection and never answers, Close aborts that dial at once rather
// than after connection_timeout (60 s here) or closeBudget: the subscriber
// fails with transports.ErrClosed, and the healthy publishing connection
// is closed gracefully (no error).
func TestCloseAbortsFirstConsumerDial(t *testing.T) {
	sl := startStallingListener(t, 1) // the publishing connection goes through
	raw := testURL(t, sl.url(t), "connection_timeout=60000")
	tr := openForTest(t, raw)
	made := make(chan error, 1)
	go func() {
		_, err := tr.NewSubscriber(transports.SubscriberConfig{Group: "g", Consumer: "c", AckTimeout: time.Minute, Concurrency: 1})
		made <- err
	}()
	select {
	case <-sl.stalled: // the consumer connection's dial is under way
	case err := <-made:
		t.Fatalf("NewSubscriber returned before its connection was accepted: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the consumer connection was never dialled")
	}

	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- tr.Close() }()
	select {
	case err := <-closed:
		if took := time.Since(start); took > closeBudget/2 {
			t.Errorf("Close returned after %s while the consumer connection was being dialled, want at once", took)
		}
		if err != nil {
			t.Errorf("Close = %v, want nil (the publishing connection is healthy)", err)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("Close did not return while the consumer connection was being dialled")
	}
	select {
	case err := <-made:
		t.Logf("Close returned in %s; NewSubscriber: %v", time.Since(start).Round(time.Millisecond), err)
		if !errors.Is(err, transports.ErrClosed) {
			t.Errorf("NewSubscriber whose dial Close aborted = %v, want transports.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("NewSubscriber did not return after Close")
	}
}

// A lost connection being made again is aborted by Close: the publishing
// connection is cut, and its reconnection reaches a broker that holds
// back every reply, so that the AMQP handshake never ends (60 s of
// connection_timeout). Close returns at once, without an error: it does
// not wait for the watchdog (closeBudget) to drop the connection.
func TestCloseAbortsReconnection(t *testing.T) {
	p := startProxy(t)
	raw := testURL(t, p.url(t), "connection_timeout=60000")
	tr := openForTest(t, raw)
	before := tr.pool.latestCork()

	p.stop() // the connection is lost; reconnections are refused...
	p.Hold() // ...and, from the restart on, never answered
	defer p.Release()
	p.start(t)
	eventually(t, 30*time.Second, "a reconnection connected, its handshake under way", func() bool {
		c := tr.pool.latestCork()
		return c != nil && c != before
	})
	if _, err := tr.pubConn.current(); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("publishing connection during the held reconnection: %v, want ErrNotConnected", err)
	}

	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- tr.Close() }()
	select {
	case err := <-closed:
		t.Logf("Close returned in %s", time.Since(start).Round(time.Millisecond))
		if took := time.Since(start); took > closeBudget/2 {
			t.Errorf("Close returned after %s while a reconnection's handshake was under way, want at once", took)
		}
		if err != nil {
			t.Errorf("Close = %v, want nil (nothing was open to close)", err)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("Close did not return while a reconnection's handshake was under way")
	}
}

// A connection made is no longer watched by its dial's context: ending the
// context afterwards (Close does, first thing) leaves it open, so that
// Close still closes the healthy connections gracefully.
func TestDialContextLeavesConnectionMade(t *testing.T) {
	tr := openForTest(t, testURL(t, "", ""))
	ctx, cancel := context.WithCancelCause(context.Background())
	conn, err := tr.dialWith(ctx, "busline test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	cancel(transports.ErrClosed)
	ch, err := conn.Channel() // a round trip with the broker
	if err != nil {
		t.Fatalf("open a channel after the dial's context ended: %v", err)
	}
	_ = ch.Close()
	if conn.IsClosed() {
		t.Fatal("the connection closed when its dial's context ended")
	}
	if _, err := tr.dialWith(ctx, "busline test", nil); !errors.Is(err, transports.ErrClosed) {
		t.Fatalf("dial with an ended context = %v, want transports.ErrClosed", err)
	}
}
