package amqp

import (
	"context"
	"encoding/binary"
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
// holds the later ones: to a client, a broker that accepts the TCP
// connection, reads the client's protocol header and never answers it
// (afterStart false), or
// that sends connection.start and then nothing (afterStart true: the
// client's start-ok reaches the broker, its answer is held back). stalled
// receives a value for each connection held so, once the client waits on
// it. Everything is closed when the test ends.
type stallingListener struct {
	addr    string
	stalled chan struct{}
}

// startStallingListener starts a stallingListener that forwards the first
// forward connections.
func startStallingListener(t *testing.T, forward int, afterStart bool) *stallingListener {
	t.Helper()
	target := brokerTarget(t)
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
	stalled := func() {
		select {
		case s.stalled <- struct{}{}:
		default:
		}
	}
	wg.Go(func() {
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			track(c)
			if n >= forward && !afterStart {
				wg.Go(func() { // held once the client began its handshake
					protocolHeader := make([]byte, 8)
					if _, err := io.ReadFull(c, protocolHeader); err != nil {
						return
					}
					stalled()
					_, _ = io.Copy(io.Discard, c)
				})
				continue
			}
			server, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				_ = c.Close()
				continue
			}
			track(server)
			pipe := func(dst, src net.Conn) {
				_, _ = io.Copy(dst, src)
				_ = dst.Close()
				_ = src.Close()
			}
			if n < forward {
				wg.Go(func() { pipe(c, server) })
				wg.Go(func() { pipe(server, c) })
				continue
			}
			wg.Go(func() { // connection.start only, then the broker's answers are held
				defer func() { _ = c.Close(); _ = server.Close() }()
				hdr := make([]byte, 7)
				if _, err := io.ReadFull(server, hdr); err != nil {
					return
				}
				body := make([]byte, binary.BigEndian.Uint32(hdr[3:7])+1)
				if _, err := io.ReadFull(server, body); err != nil {
					return
				}
				if _, err := c.Write(append(hdr, body...)); err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, server)
			})
			wg.Go(func() { // the client's bytes go through; its start-ok means it waits
				protocolHeader := make([]byte, 8)
				if _, err := io.ReadFull(c, protocolHeader); err != nil {
					return
				}
				if _, err := server.Write(protocolHeader); err != nil {
					return
				}
				startOK := make([]byte, 7)
				if _, err := io.ReadFull(c, startOK); err != nil {
					return
				}
				if _, err := server.Write(startOK); err != nil {
					return
				}
				stalled()
				_, _ = io.Copy(server, c)
			})
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
func (s *stallingListener) url(t *testing.T) string { return brokerURLAt(t, s.addr) }

// closeAtOnce closes tr and fails the test unless Close returns without
// an error well within closeBudget (nothing here waits on the broker).
func closeAtOnce(t *testing.T, tr *Transport, while string) {
	t.Helper()
	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- tr.Close() }()
	select {
	case err := <-closed:
		t.Logf("Close returned in %s", time.Since(start).Round(time.Millisecond))
		if took := time.Since(start); took > closeBudget/2 {
			t.Errorf("Close returned after %s while %s, want at once", took, while)
		}
		if err != nil {
			t.Errorf("Close = %v, want nil (nothing open was left unanswered)", err)
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("Close did not return while %s", while)
	}
}

// whileStalled runs call in a goroutine and waits until sl holds the
// handshake of the connection it dials; it returns call's outcome.
func whileStalled(t *testing.T, sl *stallingListener, what string, call func() error) <-chan error {
	t.Helper()
	made := make(chan error, 1)
	go func() { made <- call() }()
	select {
	case <-sl.stalled:
	case err := <-made:
		t.Fatalf("%s returned before its connection was held: %v", what, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s never dialled", what)
	}
	return made
}

// subscribeWhileStalled starts NewSubscriber (whose first consumer
// connection is dialled under the transport's lock) and waits until sl
// holds that connection's handshake; it returns NewSubscriber's outcome.
func subscribeWhileStalled(t *testing.T, tr *Transport, sl *stallingListener) <-chan error {
	t.Helper()
	return whileStalled(t, sl, "NewSubscriber", func() error {
		_, err := tr.NewSubscriber(transports.SubscriberConfig{Group: "g", Consumer: "c", AckTimeout: time.Minute, Concurrency: 1})
		return err
	})
}

// abandoned waits for the outcome of a call whose dial Close aborted: an
// error wrapping transports.ErrClosed, and nothing that reads as a
// refused login.
func abandoned(t *testing.T, made <-chan error) {
	t.Helper()
	select {
	case err := <-made:
		if !errors.Is(err, transports.ErrClosed) {
			t.Errorf("NewSubscriber whose dial Close aborted = %v, want transports.ErrClosed", err)
		}
		if errors.Is(err, transports.ErrAccessRefused) {
			t.Errorf("NewSubscriber whose dial Close aborted = %v, which reads as transports.ErrAccessRefused", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("NewSubscriber did not return after Close")
	}
}

// The first consumer connection is dialled under the transport's lock,
// when the first subscriber is made. Against a broker that accepts the
// TCP connection and never answers, Close aborts that dial at once rather
// than after connection_timeout (60 s here) or closeBudget: the subscriber
// fails with transports.ErrClosed, and the healthy publishing connection
// is closed gracefully (no error).
func TestCloseAbortsFirstConsumerDial(t *testing.T) {
	sl := startStallingListener(t, 1, false) // the publishing connection goes through
	tr := openForTest(t, testURL(t, sl.url(t), "connection_timeout=60000"))
	made := subscribeWhileStalled(t, tr, sl)
	closeAtOnce(t, tr, "the consumer connection was being dialled")
	abandoned(t, made)
}

// The same, with the handshake cut after connection.start: amqp091 takes
// a connection lost at that step for a refused login, which the aborted
// dial must not report.
func TestCloseAbortsDialAfterConnectionStart(t *testing.T) {
	sl := startStallingListener(t, 1, true)
	tr := openForTest(t, testURL(t, sl.url(t), "connection_timeout=60000"))
	made := subscribeWhileStalled(t, tr, sl)
	closeAtOnce(t, tr, "the consumer connection's handshake waited for connection.tune")
	abandoned(t, made)
}

// A lost connection being made again is aborted by Close: the publishing
// connection is cut, and its reconnection reaches a broker that holds
// back every reply, so that the AMQP handshake never ends (60 s of
// connection_timeout). Close returns at once, without an error: it does
// not wait for the watchdog (closeBudget) to drop the connection.
func TestCloseAbortsReconnection(t *testing.T) {
	p := startProxy(t)
	tr := openForTest(t, testURL(t, p.url(t), "connection_timeout=60000"))
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
	closeAtOnce(t, tr, "a reconnection's handshake was under way")
}

// Open's own dial ends with its context: a cancel, not only a deadline,
// aborts a handshake the broker never answers.
func TestOpenCancelledDuringDial(t *testing.T) {
	sl := startStallingListener(t, 0, false)
	u, err := url.Parse(testURL(t, sl.url(t), "connection_timeout=60000"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	opened := whileStalled(t, sl, "Open", func() error {
		tr, err := Open(ctx, u, transports.OpenOptions{Service: "svc"})
		if err == nil {
			_ = tr.Close()
		}
		return err
	})
	cancel()
	select {
	case err := <-opened:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Open cancelled during its dial = %v, want context.Canceled", err)
		}
	case <-time.After(closeBudget):
		t.Fatal("Open did not return after its context was cancelled")
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

// The connections of Inspect (and Tail, FindGroup, RemoveGroup) end their
// dial with the caller's context, and a closed transport dials none.
func TestInspectDialEndsWithItsContext(t *testing.T) {
	sl := startStallingListener(t, 1, true) // the publishing connection goes through
	tr := openForTest(t, testURL(t, sl.url(t), "connection_timeout=60000"))
	ctx, cancel := context.WithCancel(context.Background())
	inspected := whileStalled(t, sl, "Inspect", func() error {
		_, err := tr.Inspect(ctx, transports.InspectOptions{Groups: []string{"g"}})
		return err
	})
	cancel()
	select {
	case err := <-inspected:
		if !errors.Is(err, context.Canceled) || errors.Is(err, transports.ErrAccessRefused) {
			t.Fatalf("Inspect cancelled during its dial = %v, want context.Canceled only", err)
		}
	case <-time.After(closeBudget):
		t.Fatal("Inspect did not return after its context was cancelled")
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Inspect(context.Background(), transports.InspectOptions{Groups: []string{"g"}}); !errors.Is(err, transports.ErrClosed) {
		t.Fatalf("Inspect after Close = %v, want transports.ErrClosed", err)
	}
}
