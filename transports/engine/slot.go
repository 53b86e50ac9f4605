package engine

import (
	"errors"
	"log/slog"
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
	sb := s.newSettleBuf()
	for {
		e, msg, mc := s.handOut(sb, nil)
		if e == nil || !s.await(e, msg, mc, sb) {
			return
		}
	}
}

// handOut takes the next entry, makes it a message and marks it out: sent
// on out by an engine slot (caller nil), or returned to a caller slot,
// which hands it over itself once caller (Slot.Next's admit, when not
// nil) agrees. It returns nils once reading stopped or the caller
// refused; the entry goes back to the broker uncounted then. The hand-out
// and its attempt record happen under sendMu, so Close, which waits for
// it, finds the entry out and the record with the settler (a record made
// before the hand-out, one round trip, holds Close that long).
func (s *subscription) handOut(sb *settleBuf, caller func() bool) (*entry, *message.Message, *msgContext) {
	e := s.next()
	if e == nil {
		return nil, nil, nil
	}
	s.sendMu.RLock()
	defer s.sendMu.RUnlock()
	toOut := s.callerSlots == nil
	if s.outClosed || (!toOut && (s.readCtx.Err() != nil || (caller != nil && !caller()))) {
		s.giveBack(e)
		return nil, nil, nil
	}
	// After the refusals: a record made for an entry given back would
	// count a delivery no handler got. (A send refused below, as reading
	// stops, still can: the count is one high for that entry then.)
	s.recordFirst(e)
	msg, mc := s.message(e)
	if toOut && !s.send(msg) {
		mc.cancel()
		s.giveBack(e)
		return nil, nil, nil
	}
	s.handedOut(e, &mc.info, sb)
	return e, msg, mc
}

// send hands msg to a reader of out; false when reading stopped first.
// A reader is usually waiting: the send without a select is the cheaper
// path then (selectgo locks every channel it waits on).
func (s *subscription) send(msg *message.Message) bool {
	select {
	case s.out <- msg:
		return true
	default:
	}
	select {
	case s.out <- msg:
		return true
	case <-s.readCtx.Done():
		return false
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
	// The first hand-out's context is allocated with the entry.
	ctx := &e.ctx
	if e.handed {
		ctx = new(msgContext)
	}
	e.handed = true
	ctx.Context = s.baseCtx
	ctx.info = transports.DeliveryInfo{Attempt: e.attempts + 1, Topic: s.topic, Group: s.cfg.Group, Poison: e.m.Poison}
	msg.SetContext(ctx)
	return msg, ctx
}

// recordFirst records the attempt of a hand-out before the handler
// starts, when e was delivered before (a re-read of the pending list, or
// a redelivery by the engine after a failure): a handler that kills its
// process on such an event would otherwise end each run before the
// batched record, and the broker's count would never reach MaxDeliveries
// (a crash loop). A first delivery keeps the batched record: a crash loses
// at most its one attempt, and the event is a re-read from then on. When
// the record fails, the batched record is the fallback.
func (s *subscription) recordFirst(e *entry) {
	if e.recorded || (!e.reread && !e.handed) {
		return
	}
	a := driver.Attempt{AckID: e.id, Attempts: e.attempts + 1}
	if err := s.settler.recordNow(a); err != nil {
		if s.readCtx.Err() == nil {
			s.log.Debug("engine: recording an attempt before its hand-out failed; it is recorded after", slog.Any("error", err))
		}
		return
	}
	e.recorded = true
}

// handedOut marks e out and records its attempt unless the broker counted it.
func (s *subscription) handedOut(e *entry, info *transports.DeliveryInfo, sb *settleBuf) {
	s.inFlight.Add(1)
	if s.ahead != nil {
		s.handed.Add(1)
	}
	e.set(out)
	record := !e.recorded
	e.recorded = false
	if record {
		a := driver.Attempt{AckID: e.id, Attempts: info.Attempt}
		if !sb.record(s, a) {
			s.settler.record(a)
		}
	}
}

// await waits for the Ack or Nack of a handed-out message and settles it.
// It reports false at Close: an Ack or Nack made before still counts; a
// message neither acked nor nacked stays pending.
func (s *subscription) await(e *entry, msg *message.Message, mc *msgContext, sb *settleBuf) bool {
	defer mc.cancel()
	info := &mc.info
	select {
	case <-msg.Acked():
		s.acked(e, sb)
		return true
	case <-msg.Nacked():
		s.nacked(e, info, sb)
		return true
	case <-s.lifeCtx.Done():
		select {
		case <-msg.Acked():
			s.acked(e, sb)
		case <-msg.Nacked():
			s.nacked(e, info, sb)
		default:
		}
		return false
	}
}

func (s *subscription) acked(e *entry, sb *settleBuf) {
	e.set(acking) // held until the broker has the ack
	if !sb.ack(s, e.id) {
		s.settler.ack(e.id)
	}
	s.inFlight.Add(-1)
	s.tokens <- struct{}{}
}

// nacked sends e back for a redelivery after the consumer's delay
// (DefaultNackDelay when it set none): on a pending-list broker the engine
// holds it until then, otherwise the broker delays it.
func (s *subscription) nacked(e *entry, info *transports.DeliveryInfo, sb *settleBuf) {
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
		n := driver.Nack{AckID: e.id, Delay: delay, Attempts: info.Attempt}
		if !sb.nack(s, n) {
			s.settler.nack(n)
		}
	}
	s.inFlight.Add(-1)
	s.tokens <- struct{}{}
}

// settleBuf is a slot's room for settling inline, on a driver that says
// its settlements are cheap (Capabilities.SettleInline): the one-entry
// slices it hands the driver, allocated once per slot. A nil settleBuf
// settles nothing: the settler batches everything. Each method reports
// whether the broker has the settlement; one that failed is the
// settler's to retry. A closed driver counts as settled, as in the
// settler's flush: nothing reaches it any more.
type settleBuf struct {
	ids      [1]driver.AckID
	attempts [1]driver.Attempt
	nacks    [1]driver.Nack
}

// newSettleBuf returns a slot's settleBuf: nil unless the driver settles inline.
func (s *subscription) newSettleBuf() *settleBuf {
	if !s.caps.SettleInline {
		return nil
	}
	return new(settleBuf)
}

func (sb *settleBuf) ack(s *subscription, id driver.AckID) bool {
	if sb == nil {
		return false
	}
	sb.ids[0] = id
	defer func() { sb.ids[0] = nil }()
	if !settled(s.d.Ack(s.baseCtx, sb.ids[:])) {
		return false
	}
	s.mu.Lock() // the acking entry is held: no lookup, as forget makes
	s.forgetLocked(id)
	s.mu.Unlock()
	return true
}

func (sb *settleBuf) nack(s *subscription, n driver.Nack) bool {
	if sb == nil {
		return false
	}
	sb.nacks[0] = n
	defer func() { sb.nacks[0] = driver.Nack{} }()
	s.keepMu.Lock() // after a keep-alive that may name it, as in the settler
	defer s.keepMu.Unlock()
	return settled(s.d.Nack(s.baseCtx, sb.nacks[:]))
}

func (sb *settleBuf) record(s *subscription, a driver.Attempt) bool {
	if sb == nil {
		return false
	}
	sb.attempts[0] = a
	defer func() { sb.attempts[0] = driver.Attempt{} }()
	return settled(s.d.Record(s.baseCtx, sb.attempts[:]))
}

func settled(err error) bool { return err == nil || errors.Is(err, transports.ErrClosed) }
