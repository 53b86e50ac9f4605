package engine

import (
	"context"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
)

var _ transports.SlotSubscriber = (*Subscriber)(nil)

// SubscribeSlots joins the group on topic as Subscribe does and returns
// Concurrency slots, each run by a goroutine of the caller, in place of a
// channel and the engine's own slot goroutines: a message goes from the
// read to its handler, and its settlement from the handler to the broker,
// in the caller's goroutine. Reading, claims, keep-alives, redeliveries,
// attempts and Close are those of Subscribe.
func (s *Subscriber) SubscribeSlots(ctx context.Context, topic string) ([]transports.Slot, error) {
	sub, err := s.subscribe(ctx, topic, true)
	if err != nil {
		return nil, err
	}
	slots := make([]transports.Slot, len(sub.callerSlots))
	for i, sl := range sub.callerSlots {
		slots[i] = sl
	}
	return slots, nil
}

// callerSlot is a slot run by a goroutine of SubscribeSlots' caller: the
// engine's slot loop (slot.go) with the hand-out on a channel and the wait
// for the Ack or Nack left to the caller.
type callerSlot struct {
	s     *subscription
	sb    *settleBuf
	e     *entry // handed out and not settled
	msg   *message.Message
	mc    *msgContext
	ended atomic.Bool // Next returned nil, or Close ended the slot
}

// Next settles the message handed out before, if any, and hands out the
// next one if admit agrees; nil once reading stopped. It runs under
// settleMu (read), so that Close, which takes it, waits for every Next in
// progress (its read, its give-back) before it returns entries and
// flushes: nothing a slot does comes after.
func (sl *callerSlot) Next(admit func() bool) *message.Message {
	s := sl.s
	s.settleMu.RLock()
	defer s.settleMu.RUnlock()
	if sl.e != nil {
		sl.settleLocked()
	}
	if !sl.ended.Load() && !s.settleClosed {
		if e, msg, mc := s.handOut(sl.sb, admit); e != nil {
			sl.e, sl.msg, sl.mc = e, msg, mc
			return msg
		}
	}
	sl.end()
	return nil
}

// Settle settles the message Next returned once it was acked or nacked;
// one that was neither stays out (pending for this member) until Close.
func (sl *callerSlot) Settle() {
	s := sl.s
	s.settleMu.RLock()
	defer s.settleMu.RUnlock()
	sl.settleLocked()
}

// settleLocked is Settle under settleMu (read, or write at Close).
func (sl *callerSlot) settleLocked() {
	e, msg, mc := sl.e, sl.msg, sl.mc
	if e == nil {
		return
	}
	sl.e, sl.msg, sl.mc = nil, nil, nil
	defer mc.cancel()
	s := sl.s
	if s.settleClosed {
		return // after Close: the message stays pending
	}
	select {
	case <-msg.Acked():
		s.acked(e, sl.sb)
	case <-msg.Nacked():
		s.nacked(e, &mc.info, sl.sb)
	default:
	}
}

// end marks the slot done for the subscription's wait on its slots, once.
func (sl *callerSlot) end() {
	if sl.ended.CompareAndSwap(false, true) {
		sl.s.slots.Done()
	}
}

// endCallerSlots runs at Close, once reading stopped: it waits for every
// Next and Settle in progress, settles the messages acked or nacked and
// not settled yet (as an engine slot does when Close ends its wait), stops
// later settles (their messages stay pending) and ends every slot.
func (s *subscription) endCallerSlots() {
	s.settleMu.Lock()
	for _, sl := range s.callerSlots {
		if sl.e == nil {
			continue
		}
		select {
		case <-sl.msg.Acked():
		case <-sl.msg.Nacked():
		default:
			continue // neither: it stays pending
		}
		sl.settleLocked()
	}
	s.settleClosed = true
	s.settleMu.Unlock()
	for _, sl := range s.callerSlots {
		sl.end()
	}
}
