package memory

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/driver"
)

// memDriver is the memory broker's driver for the delivery engine: every
// call is one or two broker operations under the broker's lock.
type memDriver struct{ t *Transport }

var _ driver.Driver = memDriver{}

// Open implements driver.Driver: it creates the group at cfg.Since when it
// does not exist and registers the consumer.
func (d memDriver) Open(_ context.Context, topic string, cfg transports.SubscriberConfig) (driver.Subscription, error) {
	if d.t.subs.Closed() {
		return nil, transports.ErrClosed
	}
	b := d.t.broker
	b.mu.Lock()
	defer b.mu.Unlock()
	g := b.createGroupLocked(topic, cfg.Group, toSince(cfg.Since))
	g.consumerLocked(cfg.Consumer, b.now()).open++
	return &memSub{b: b, g: g, topic: topic, consumer: cfg.Consumer, ackTimeout: cfg.AckTimeout}, nil
}

// memSub is one consumer of one group reading one stream.
type memSub struct {
	b          *Broker
	g          *group
	topic      string
	consumer   string
	ackTimeout time.Duration
	closed     atomic.Bool
}

func (s *memSub) Capabilities() driver.Capabilities {
	return driver.Capabilities{PendingList: true, SettleInline: true, ConcurrentReceive: true}
}

// Receive implements driver.Subscription (XREADGROUP ... BLOCK wait ... >).
func (s *memSub) Receive(ctx context.Context, max int, wait time.Duration) ([]*driver.Message, error) {
	var timer *time.Timer
	// No defer: one in the loop would cost every read a deferreturn.
	stop := func() {
		if timer != nil {
			timer.Stop()
		}
	}
	// The entries of a small read stay on the stack: they are turned
	// into messages before Receive returns.
	var buf [4]entry
	for {
		if s.closed.Load() {
			stop()
			return nil, transports.ErrClosed
		}
		b := s.b
		b.mu.Lock()
		entries := b.readNewLocked(s.g, s.consumer, max, buf[:0])
		var changed <-chan struct{}
		if len(entries) == 0 {
			changed = s.g.stream.watch()
		}
		b.mu.Unlock()
		if len(entries) > 0 {
			stop()
			return s.messages(entries, nil, true), nil
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		}
		select {
		case <-changed:
		case <-timer.C:
			return nil, nil
		case <-ctx.Done():
			stop()
			return nil, ctx.Err()
		}
	}
}

// Pending implements driver.Subscription (XPENDING, then XRANGE).
func (s *memSub) Pending(_ context.Context, cursor string, max int) ([]*driver.Message, string, error) {
	if s.closed.Load() {
		return nil, "", transports.ErrClosed
	}
	after, _ := strconv.ParseUint(cursor, 10, 64)
	s.b.mu.Lock()
	entries, counts, next := s.b.pendingLocked(s.g, s.consumer, after, max)
	s.b.mu.Unlock()
	return s.messages(entries, counts, false), seqCursor(next), nil
}

// Claim implements driver.Subscription (XAUTOCLAIM ... JUSTID).
func (s *memSub) Claim(_ context.Context, minIdle time.Duration, cursor string, max int) ([]*driver.Message, string, error) {
	if s.closed.Load() {
		return nil, "", transports.ErrClosed
	}
	start, _ := strconv.ParseUint(cursor, 10, 64)
	s.b.mu.Lock()
	entries, counts, next := s.b.autoClaimLocked(s.g, s.consumer, minIdle, start, max)
	s.b.mu.Unlock()
	return s.messages(entries, counts, false), seqCursor(next), nil
}

// update runs f under the broker's lock, unless the subscription is closed.
func (s *memSub) update(f func(b *Broker)) error {
	if s.closed.Load() {
		return transports.ErrClosed
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	f(s.b)
	return nil
}

// KeepAlive implements driver.Subscription.
func (s *memSub) KeepAlive(_ context.Context, ids []driver.AckID) error {
	return s.update(func(b *Broker) {
		now := b.now()
		for _, id := range ids {
			b.touchLocked(s.g, s.consumer, id.(uint64), now)
		}
	})
}

// Record implements driver.Subscription (XCLAIM ... RETRYCOUNT n JUSTID).
func (s *memSub) Record(_ context.Context, attempts []driver.Attempt) error {
	return s.update(func(b *Broker) {
		for _, a := range attempts {
			b.setCountLocked(s.g, s.consumer, a.AckID.(uint64), a.Attempts, 0)
		}
	})
}

// Ack implements driver.Subscription (XACK).
func (s *memSub) Ack(_ context.Context, ids []driver.AckID) error {
	return s.update(func(b *Broker) {
		for _, id := range ids {
			b.ackLocked(s.g, id.(uint64))
		}
		b.notifyLocked()
	})
}

// Nack implements driver.Subscription: the entry stays in this consumer's
// PEL with the given count, idle so that another member may claim it once
// its delay ends (XCLAIM ... IDLE AckTimeout-delay RETRYCOUNT n JUSTID).
func (s *memSub) Nack(_ context.Context, nacks []driver.Nack) error {
	return s.update(func(b *Broker) {
		for _, n := range nacks {
			b.setCountLocked(s.g, s.consumer, n.AckID.(uint64), n.Attempts, s.ackTimeout-n.Delay)
		}
		b.notifyLocked()
	})
}

// Close implements driver.Subscription: the consumer's pending entries stay.
func (s *memSub) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := s.g.consumers[s.consumer]; c != nil {
		c.open--
		c.lastSeen = b.now()
	}
	s.g.stream.wake() // a Receive in progress returns ErrClosed
	return nil
}

// messages turns broker entries into driver messages; counts are the
// attempts recorded before (nil: new entries, which count themselves).
func (s *memSub) messages(entries []entry, counts []int, recorded bool) []*driver.Message {
	if len(entries) == 0 {
		return nil
	}
	var (
		out []*driver.Message
		ms  []driver.Message
	)
	if len(entries) == 1 {
		// One allocation for the most frequent read, a single entry.
		one := new(struct {
			p [1]*driver.Message
			m [1]driver.Message
		})
		out, ms = one.p[:], one.m[:]
	} else {
		out = make([]*driver.Message, len(entries))
		ms = make([]driver.Message, len(entries))
	}
	for i, e := range entries {
		m := &ms[i]
		m.AckID, m.Topic, m.Message, m.Recorded = e.seq, s.topic, e.msg.message(), recorded
		if counts != nil {
			m.Attempts = counts[i]
		}
		out[i] = m
	}
	return out
}

func seqCursor(seq uint64) string {
	if seq == 0 {
		return ""
	}
	return strconv.FormatUint(seq, 10)
}

// Driver returns the transport's driver for the delivery engine, for the
// driver tier of transports/transporttest and for tools.
func (t *Transport) Driver() driver.Driver { return memDriver{t} }
