package engine

import (
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/driver"
)

// slot hands queued entries out one at a time and waits for each one's
// Ack or Nack before taking the next, so that at most Concurrency
// messages are out.
func (s *subscription) slot() {
	defer s.slots.Done()
	for {
		e := s.next()
		if e == nil {
			return
		}
		s.sendMu.RLock()
		if s.outClosed {
			s.sendMu.RUnlock()
			s.giveBack(e)
			return
		}
		msg, mc := s.message(e)
		select {
		case s.out <- msg:
			s.sendMu.RUnlock()
		case <-s.readCtx.Done():
			s.sendMu.RUnlock()
			mc.cancel()
			s.giveBack(e)
			return
		}
		s.handedOut(e, &mc.info)
		if !s.await(e, msg, mc) {
			return
		}
	}
}

// message makes the message handed out for e: the driver's message the
// first time, a copy for a redelivery by the engine. Its context, also
// returned, carries the DeliveryInfo and ends once the message is acked
// or nacked. The caller cancels it with mc.cancel: a method value
// (ctx.cancel as a context.CancelFunc) would cost an allocation per message.
func (s *subscription) message(e *entry) (*message.Message, *msgContext) {
	msg := e.m.Message
	if msg == nil {
		msg = message.NewMessage("", nil)
		e.m.Message = msg
	}
	if e.handed {
		msg = msg.Copy()
	}
	e.handed = true
	ctx := &msgContext{Context: s.baseCtx,
		info: transports.DeliveryInfo{Attempt: e.attempts + 1, Topic: s.topic, Group: s.cfg.Group, Poison: e.m.Poison}}
	msg.SetContext(ctx)
	return msg, ctx
}

// handedOut marks e out and records its attempt unless the broker counted it.
func (s *subscription) handedOut(e *entry, info *transports.DeliveryInfo) {
	s.inFlight.Add(1)
	e.set(out)
	record := !e.recorded
	e.recorded = false
	if record {
		s.settler.record(driver.Attempt{AckID: e.id, Attempts: info.Attempt})
	}
}

// await waits for the Ack or Nack of a handed-out message and settles it.
// It reports false at Close: an Ack or Nack made before still counts; a
// message neither acked nor nacked stays pending.
func (s *subscription) await(e *entry, msg *message.Message, mc *msgContext) bool {
	defer mc.cancel()
	info := &mc.info
	select {
	case <-msg.Acked():
		s.acked(e)
		return true
	case <-msg.Nacked():
		s.nacked(e, info)
		return true
	case <-s.lifeCtx.Done():
		select {
		case <-msg.Acked():
			s.acked(e)
		case <-msg.Nacked():
			s.nacked(e, info)
		default:
		}
		return false
	}
}

func (s *subscription) acked(e *entry) {
	e.set(acking) // held until the broker has the ack
	s.settler.ack(e.id)
	s.inFlight.Add(-1)
	s.tokens <- struct{}{}
}

// nacked sends e back for a redelivery after the consumer's delay
// (DefaultNackDelay when it set none): on a pending-list broker the engine
// holds it until then, otherwise the broker delays it.
func (s *subscription) nacked(e *entry, info *transports.DeliveryInfo) {
	delay := info.RetryAfter
	if delay <= 0 {
		delay = DefaultNackDelay
	}
	if s.caps.PendingList {
		s.mu.Lock()
		e.attempts, e.due = info.Attempt, time.Now().Add(delay)
		e.set(delayed)
		s.mu.Unlock()
		s.sched.add(e)
	} else {
		s.mu.Lock()
		delete(s.held, e.id)
		s.mu.Unlock()
		s.settler.nack(driver.Nack{AckID: e.id, Delay: delay, Attempts: info.Attempt})
	}
	s.inFlight.Add(-1)
	s.tokens <- struct{}{}
}
