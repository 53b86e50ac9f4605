package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/idempotency"
	"github.com/busline/busline/idempotency/redisstore"
)

// cutter breaks the connection of the next command that names its key:
// after Redis ran it and before its reply reaches the client (lost reply),
// or before the command reaches Redis (lost request).
type cutter struct {
	mu      sync.Mutex
	needle  []byte
	request bool // cut before the command reaches Redis
}

// arm makes the next command naming key lose its reply (or, with request,
// the command itself); it fires once.
func (c *cutter) arm(key string, request bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.needle, c.request = []byte(key), request
}

// fire reports whether a write of b is the armed command, and disarms.
func (c *cutter) fire(b []byte) (fired, request bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.needle == nil || !bytes.Contains(b, c.needle) {
		return false, false
	}
	c.needle = nil
	return true, c.request
}

// pending reports whether the armed cut has not happened yet.
func (c *cutter) pending() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.needle != nil
}

type cutConn struct {
	net.Conn
	c         *cutter
	loseReply bool
}

func (cc *cutConn) Write(b []byte) (int, error) {
	fired, request := cc.c.fire(b)
	if fired && request {
		_ = cc.Conn.Close()
		return 0, io.ErrClosedPipe
	}
	cc.loseReply = cc.loseReply || fired
	return cc.Conn.Write(b)
}

func (cc *cutConn) Read(b []byte) (int, error) {
	if !cc.loseReply {
		return cc.Conn.Read(b)
	}
	// Wait for the first byte of the reply: Redis ran the command. Then
	// drop it with the connection.
	var one [1]byte
	_, _ = io.ReadFull(cc.Conn, one[:])
	_ = cc.Conn.Close()
	return 0, io.EOF
}

// cutClient is a client to the test Redis whose connections c can cut;
// maxRetries is go-redis's MaxRetries (-1: a broken command fails at once).
func cutClient(t *testing.T, c *cutter, maxRetries int) *redis.Client {
	t.Helper()
	client(t) // skip when Redis is unreachable
	o, err := redis.ParseURL(redisURL())
	if err != nil {
		t.Fatal(err)
	}
	o.MaxRetries = maxRetries
	o.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &cutConn{Conn: conn, c: c}, nil
	}
	rc := redis.NewClient(o)
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

// A Begin whose SET was applied by Redis but whose reply was lost leaves a
// lease with the Begin's token. The retry of the same delivery by the same
// holder must get the event (Fresh) at once, not find it held until the
// lease expires; another holder (another process) must still find it held.
func TestLostBeginReply(t *testing.T) {
	for _, tc := range []struct {
		name       string
		maxRetries int
		legacy     bool
	}{
		{"go-redis sends the SET again", 3, false},
		{"Begin fails, the delivery is retried", -1, false},
		{"Begin script, go-redis sends it again", 3, true},
		{"Begin script fails, the delivery is retried", -1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cut := &cutter{}
			rc := cutClient(t, cut, tc.maxRetries)
			p := prefix(t, client(t))
			s := redisstore.New(rc, redisstore.Options{Prefix: p})
			other := redisstore.New(client(t), redisstore.Options{Prefix: p})
			if tc.legacy {
				redisstore.UseBeginScript(s)
			}
			me := idempotency.WithHolder(context.Background(), idempotency.Holder{Process: "billing-1", Run: "run-a"})
			ctx, cancel := context.WithTimeout(me, 10*time.Second)
			defer cancel()

			cut.arm(p+"g:e1", false)
			st, l, err := s.Begin(ctx, "g:e1", time.Hour)
			if cut.pending() {
				t.Fatal("the Begin's command was not cut")
			}
			if tc.maxRetries < 0 {
				if err == nil {
					t.Fatalf("Begin with its reply lost and no retry = %v, want an error", st)
				}
				if ttl := rc.PTTL(ctx, p+"g:e1").Val(); ttl <= 0 {
					t.Fatalf("PTTL after the lost reply = %s: the SET was not applied, the test cuts too early", ttl)
				}
				// The delivery is retried, by two copies of the event at
				// once: exactly one takes the abandoned lease over.
				var wg sync.WaitGroup
				var mu sync.Mutex
				fresh := 0
				for range 4 {
					wg.Go(func() {
						st, got, err := s.Begin(me, "g:e1", time.Hour)
						if err != nil {
							t.Errorf("Begin after a lost reply = %v", err)
						}
						if st == idempotency.Fresh {
							mu.Lock()
							fresh++
							l = got
							mu.Unlock()
						}
					})
				}
				wg.Wait()
				if fresh != 1 {
					t.Fatalf("%d of 4 concurrent Begins after a lost reply got Fresh, want 1 (the others Held)", fresh)
				}
				st, err = idempotency.Fresh, nil
			}
			if err != nil || st != idempotency.Fresh {
				t.Fatalf("Begin after a lost reply = %v, %v; want Fresh at once (the lease is the caller's own)", st, err)
			}
			for _, who := range []context.Context{
				idempotency.WithHolder(ctx, idempotency.Holder{Process: "billing-2", Run: "run-x"}),
				me,
			} {
				if st, _, err := other.Begin(who, "g:e1", time.Hour); err != nil || st != idempotency.Held {
					t.Fatalf("Begin by another process = %v, %v; want Held", st, err)
				}
			}
			if st, _, err := s.Begin(me, "g:e1", time.Hour); err != nil || st != idempotency.Held {
				t.Fatalf("second copy in the same process while the first runs = %v, %v; want Held", st, err)
			}
			if err := s.Commit(ctx, l, time.Hour); err != nil {
				t.Fatalf("Commit of the recovered lease = %v", err)
			}
			if st, _, err := other.Begin(ctx, "g:e1", time.Hour); err != nil || st != idempotency.Done {
				t.Fatalf("Begin after the commit = %v, %v; want Done", st, err)
			}
		})
	}
}

// A lease whose Abort or Commit failed (the command never reached Redis)
// is left with no one to finish it: the retry in the same process takes it
// over at once, another process still waits for it.
func TestFailedFinishDoesNotHoldTheRetry(t *testing.T) {
	for _, finish := range []string{"abort", "commit"} {
		t.Run(finish, func(t *testing.T) {
			cut := &cutter{}
			rc := cutClient(t, cut, -1)
			p := prefix(t, client(t))
			s := redisstore.New(rc, redisstore.Options{Prefix: p})
			other := redisstore.New(client(t), redisstore.Options{Prefix: p})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st, l, err := s.Begin(ctx, "g:e1", time.Hour)
			if err != nil || st != idempotency.Fresh {
				t.Fatalf("Begin = %v, %v", st, err)
			}
			cut.arm(p+"g:e1", true)
			if finish == "abort" {
				err = s.Abort(ctx, l)
			} else {
				err = s.Commit(ctx, l, time.Hour)
			}
			if err == nil || cut.pending() {
				t.Fatalf("%s with its command cut = %v (cut pending %v), want an error", finish, err, cut.pending())
			}
			if st, _, err := other.Begin(ctx, "g:e1", time.Hour); err != nil || st != idempotency.Held {
				t.Fatalf("Begin by another process = %v, %v; want Held", st, err)
			}
			st, l2, err := s.Begin(ctx, "g:e1", time.Hour)
			if err != nil || st != idempotency.Fresh {
				t.Fatalf("retry after the failed %s = %v, %v; want Fresh at once", finish, st, err)
			}
			if err := s.Commit(ctx, l, time.Hour); !errors.Is(err, idempotency.ErrLeaseLost) {
				t.Fatalf("late commit of the abandoned lease = %v, want ErrLeaseLost", err)
			}
			if err := s.Commit(ctx, l2, time.Hour); err != nil {
				t.Fatal(err)
			}
		})
	}
}
