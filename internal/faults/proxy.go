package faults

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Proxy is a TCP proxy on a loopback port that a test can stop, which
// closes every connection through it and refuses new ones, and start again
// on the same port: to the clients behind it, the server went away and
// came back. It is how the suite restarts RabbitMQ without the
// management plugin or a node of its own.
type Proxy struct {
	target string
	addr   string

	mu    sync.Mutex
	tls   *tls.Config // nil: plain TCP to the clients
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup // accept loop and copy goroutines
	// held, while open, stops what the server sends from reaching the
	// clients (Hold); closed when not holding.
	held chan struct{}
	// withheld counts the reads of server data waiting at the gate.
	withheld int
}

// closedChan is a closed channel: the proxy's held gate when it forwards.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// StartProxy starts a proxy to target (host:port) on a free loopback port.
func StartProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faults: proxy listen: %w", err)
	}
	p := &Proxy{target: target, addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}, held: closedChan}
	p.serve(ln)
	return p, nil
}

// SetTLS makes the proxy terminate TLS with cfg towards its clients from
// its next Start on (the broker behind it is still reached in plain TCP);
// nil turns TLS off again.
func (p *Proxy) SetTLS(cfg *tls.Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tls = cfg
}

// Hold stops forwarding what the server sends to the clients, on every
// connection, until Release; what the clients send still reaches the
// server. To the clients, a server that is connected but stalled: no
// replies, no confirms, no heartbeats.
func (p *Proxy) Hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held == closedChan {
		p.held = make(chan struct{})
	}
}

// Release forwards again what Hold kept back, and what follows.
func (p *Proxy) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held != closedChan {
		close(p.held)
		p.held = closedChan
	}
}

// gate returns a channel that is closed while the proxy forwards.
func (p *Proxy) gate() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.addr }

// Stop closes the listener and every connection through the proxy (ending
// a Hold) and waits for its goroutines. Stop on a stopped proxy does
// nothing.
func (p *Proxy) Stop() {
	p.mu.Lock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
	p.conns = map[net.Conn]struct{}{}
	if p.held != closedChan { // copies waiting to forward end with their connection
		close(p.held)
		p.held = closedChan
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// Start listens again on the proxy's address, retrying for a few seconds
// while the port is not free yet.
func (p *Proxy) Start() error {
	p.mu.Lock()
	running := p.ln != nil
	p.mu.Unlock()
	if running {
		return nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ln, err := net.Listen("tcp", p.addr)
		if err == nil {
			p.serve(ln)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("faults: proxy listen again on %s: %w", p.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	if p.tls != nil {
		ln = tls.NewListener(ln, p.tls)
	}
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			p.pipe(ln, c)
		}
	}()
}

func (p *Proxy) pipe(ln net.Listener, client net.Conn) {
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		_ = client.Close()
		return
	}
	p.mu.Lock()
	if p.ln != ln { // stopped meanwhile
		p.mu.Unlock()
		_ = client.Close()
		_ = server.Close()
		return
	}
	p.conns[client], p.conns[server] = struct{}{}, struct{}{}
	p.wg.Add(2)
	p.mu.Unlock()
	cp := func(dst, src net.Conn) {
		defer p.wg.Done()
		if dst == client {
			_, _ = io.Copy(dst, gatedReader{p, src})
		} else {
			_, _ = io.Copy(dst, src)
		}
		_ = dst.Close()
		_ = src.Close()
		p.mu.Lock()
		delete(p.conns, dst)
		delete(p.conns, src)
		p.mu.Unlock()
	}
	go cp(client, server)
	go cp(server, client)
}

// gatedReader reads from the server, and waits while the proxy holds
// before it returns what it read.
type gatedReader struct {
	p   *Proxy
	src net.Conn
}

func (g gatedReader) Read(b []byte) (int, error) {
	n, err := g.src.Read(b)
	gate := g.p.gate()
	select {
	case <-gate:
	default:
		g.p.countWithheld(1)
		<-gate
		g.p.countWithheld(-1)
	}
	return n, err
}

func (p *Proxy) countWithheld(d int) {
	p.mu.Lock()
	p.withheld += d
	p.mu.Unlock()
}

// Withheld reports how many replies of the server Hold keeps from its
// clients right now: a client waits on the server.
func (p *Proxy) Withheld() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.withheld
}
