package outbox_test

import (
	"context"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/busline/busline/internal/brokertest"
	"github.com/busline/busline/outbox"
)

// silencer is a TCP proxy that can go silent: from then on it drops every
// byte in both directions but keeps the connections open, as a network
// that lost its route does. A side that closes its connection still
// closes the other.
type silencer struct {
	ln     net.Listener
	target string
	silent atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func startSilencer(t *testing.T, target string) *silencer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silencer{ln: ln, target: target}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			s.mu.Lock()
			s.conns = append(s.conns, c, d)
			s.mu.Unlock()
			s.wg.Add(2)
			go s.pipe(c, d)
			go s.pipe(d, c)
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *silencer) pipe(from, to net.Conn) {
	defer s.wg.Done()
	defer from.Close()
	defer to.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 && !s.silent.Load() {
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (s *silencer) close() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// TestSilentConnectionLoss: the active relay's connection goes silent
// (no error, no close: a network that lost its route). The relay notices
// within its statement bound, stops counting itself active and drops the
// connection. (The database ends the session when the connection closes,
// or after its TCP keepalive probes go unanswered; then a standby takes
// over.)
func TestSilentConnectionLoss(t *testing.T) {
	w := newWorld(t)
	u, err := url.Parse(brokertest.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	if u.Host == "" {
		t.Skip("BUSLINE_POSTGRES_URL has no TCP host to put a proxy in front of")
	}
	proxy := startSilencer(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	pool, err := pgxpool.New(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	a, err := outbox.New(context.Background(), w.bus, pool, outbox.Options{Table: w.table, AutoMigrate: true, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	outbox.SetDBTimeout(a, 500*time.Millisecond)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "relay a active", a.Active)
	proxy.silent.Store(true)
	waitFor(t, 10*time.Second, "relay a to notice its connection is gone", func() bool { return !a.Active() })
}
