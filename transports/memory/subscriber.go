package memory

import (
	"context"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
)

// Subscriber reads as one consumer of one group. Each Subscribe call starts
// one subscription with its own reader goroutine, stopped by the context
// or by Close.
type Subscriber struct {
	t   *Transport
	cfg transports.SubscriberConfig

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	wg      sync.WaitGroup // readers and ack waiters
}

// Subscribe creates the group if needed (at cfg.Since) and returns the
// channel of messages. The channel is closed once ctx is done or the
// subscriber is closed.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, transports.ErrClosed
	}
	b := s.t.broker
	b.mu.Lock()
	g := b.groupLocked(topic, s.cfg.Group, toSince(s.cfg.Since))
	c := g.consumers[s.cfg.Consumer]
	if c == nil {
		c = &consumer{name: s.cfg.Consumer}
		g.consumers[s.cfg.Consumer] = c
	}
	c.open++
	c.lastSeen = b.now()
	b.mu.Unlock()

	out := make(chan *message.Message)
	sub := &subscription{s: s, g: g, topic: topic, out: out, slots: make(chan struct{}, s.cfg.Concurrency)}
	sub.start(ctx)
	return out, nil
}

// Close stops every subscription. Acks and nacks made before Close are
// applied; messages handed out and not settled stay pending for this
// consumer, to be taken again by a consumer with the same name at once, or
// by another after AckTimeout.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()
	s.wg.Wait()
	s.t.forget(s)
	return nil
}

type subscription struct {
	s      *Subscriber
	g      *group
	topic  string
	out    chan *message.Message
	slots  chan struct{} // one token per message in flight
	handed chan handedOut
}

// handedOut is a message given to the consumer and not yet settled.
type handedOut struct {
	msg  *message.Message
	info *transports.DeliveryInfo
	pe   *pendingEntry
}

func (sub *subscription) start(ctx context.Context) {
	n := cap(sub.slots)
	sub.handed = make(chan handedOut, n)
	sub.s.wg.Add(1 + n)
	for range n {
		go sub.settleLoop()
	}
	go sub.read(ctx)
}

// read takes entries while a slot is free and hands them out; it stops on
// ctx or Close. Settling continues in the settle loops until every handed
// out message was acked, nacked, or the subscriber closed.
func (sub *subscription) read(ctx context.Context) {
	s, b, g := sub.s, sub.s.t.broker, sub.g
	defer s.wg.Done()
	defer close(sub.handed)
	defer close(sub.out)
	defer func() {
		b.mu.Lock()
		if c := g.consumers[s.cfg.Consumer]; c != nil {
			c.open--
			c.lastSeen = b.now()
		}
		b.mu.Unlock()
	}()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case sub.slots <- struct{}{}:
		case <-ctx.Done():
			return
		case <-s.closing:
			return
		}
		b.mu.Lock()
		pe, next := b.takeLocked(g, s.cfg.Consumer, s.cfg.AckTimeout)
		var wake <-chan struct{}
		if pe == nil {
			wake = g.waitLocked()
		}
		b.mu.Unlock()
		if pe == nil {
			<-sub.slots
			var tc <-chan time.Time
			if !next.IsZero() {
				d := time.Until(next)
				if timer == nil {
					timer = time.NewTimer(d)
				} else {
					timer.Reset(d)
				}
				tc = timer.C
			}
			select {
			case <-wake:
			case <-tc:
			case <-ctx.Done():
				return
			case <-s.closing:
				return
			}
			continue
		}
		msg := pe.msg.message()
		info := &transports.DeliveryInfo{Attempt: pe.deliveries, Topic: sub.topic, Group: g.name}
		msg.SetContext(transports.WithDeliveryInfo(context.Background(), info))
		select {
		case sub.out <- msg:
		case <-ctx.Done():
			b.settle(g, pe, false, 0)
			<-sub.slots
			return
		case <-s.closing:
			b.settle(g, pe, false, 0)
			<-sub.slots
			return
		}
		sub.handed <- handedOut{msg: msg, info: info, pe: pe}
	}
}

// settleLoop settles handed-out messages when they are acked or nacked, or
// releases them when the subscriber closes first.
func (sub *subscription) settleLoop() {
	defer sub.s.wg.Done()
	b := sub.s.t.broker
	for h := range sub.handed {
		select {
		case <-h.msg.Acked():
			b.settle(sub.g, h.pe, true, 0)
		case <-h.msg.Nacked():
			b.settle(sub.g, h.pe, false, retryAfter(h.info))
		case <-sub.s.closing:
			select {
			case <-h.msg.Acked():
				b.settle(sub.g, h.pe, true, 0)
			case <-h.msg.Nacked():
				b.settle(sub.g, h.pe, false, retryAfter(h.info))
			default:
				b.settle(sub.g, h.pe, false, 0)
			}
		}
		<-sub.slots
	}
}

// retryAfter is the consumer's delay, or the default backoff: a nack never
// makes a hot loop.
func retryAfter(info *transports.DeliveryInfo) time.Duration {
	if info.RetryAfter > 0 {
		return info.RetryAfter
	}
	return transports.DefaultRetryAfter(info.Attempt)
}
