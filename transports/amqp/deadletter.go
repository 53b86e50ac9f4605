package amqp

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/busline/busline/transports"
)

// ErrDeadLetterNotFound is returned by ReplayDeadLetter for an ID that is
// not in the group's dead-letter queue.
var ErrDeadLetterNotFound = fmt.Errorf("amqp: dead letter %w", transports.ErrNotFound)

// DeadLetter publishes msg into the dead-letter queue of group
// ("{group}.dead") with the reason, attempts, time, group and topic in
// x-busline-dead-* headers, and returns once the broker confirmed it.
func (t *Transport) DeadLetter(ctx context.Context, group string, msg *message.Message, reason string, attempts int) error {
	if t.isClosed() {
		return transports.ErrClosed
	}
	pub, err := Marshaler{}.Marshal(msg)
	if err != nil {
		return fmt.Errorf("amqp: marshal dead letter %s: %w", msg.UUID, err)
	}
	for k := range pub.Headers {
		if brokerHeader(k) {
			delete(pub.Headers, k)
		}
	}
	topic := msg.Metadata.Get("ce-type")
	if info := transports.DeliveryInfoFrom(msg.Context()); info != nil && info.Topic != "" {
		topic = info.Topic
	}
	pub.Headers[HeaderDeadID] = watermill.NewUUID()
	pub.Headers[HeaderDeadReason] = reason
	pub.Headers[HeaderDeadAttempts] = strconv.Itoa(attempts)
	pub.Headers[HeaderDeadAt] = time.Now().UTC().Format(time.RFC3339Nano)
	pub.Headers[HeaderDeadGroup] = group
	pub.Headers[HeaderTopic] = topic
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.o.ConfirmTimeout)
		defer cancel()
	}
	q := t.tp.deadQueue(group)
	if err := t.publishToQueue(ctx, q, t.tp.baseArgs(), pub); err != nil {
		return fmt.Errorf("amqp: dead-letter %s into %q: %w", msg.UUID, q, err)
	}
	return nil
}

// DeadLetters lists up to limit dead letters of group, oldest first (limit
// <= 0: all). It reads the dead-letter queue with basic.get on a channel of
// its own and closes it afterwards, which puts every message back in its
// place; while it runs, the messages it holds are invisible to other readers.
func (t *Transport) DeadLetters(ctx context.Context, group string, limit int) ([]transports.DeadLetter, error) {
	var out []transports.DeadLetter
	err := t.browse(ctx, group, func(d amqp091.Delivery, _ func() error) (bool, error) {
		out = append(out, toDeadLetter(group, d))
		return limit <= 0 || len(out) < limit, nil
	})
	return out, err
}

// ReplayDeadLetter sends the dead letter id of group back to the group
// queue as a fresh delivery (attempt 1, same event ID), then removes it
// from the dead-letter queue. An unknown id is an error wrapping
// ErrDeadLetterNotFound.
func (t *Transport) ReplayDeadLetter(ctx context.Context, group, id string) error {
	if err := t.groupQueueExists(group); err != nil {
		return err
	}
	found := false
	err := t.browse(ctx, group, func(d amqp091.Delivery, ack func() error) (bool, error) {
		if headerString(d.Headers[HeaderDeadID]) != id {
			return true, nil
		}
		found = true
		pub := republishing(d, map[string]string{
			HeaderDeadID: "", HeaderDeadReason: "", HeaderDeadAttempts: "", HeaderDeadAt: "",
			// The topic header stays: the group's queue may carry several
			// events, and the delivery must go to the right subscription.
			HeaderDeadGroup: "", HeaderAttempt: "",
		})
		if err := t.pool.publish(ctx, "", t.tp.groupQueue(group), pub); err != nil {
			return false, fmt.Errorf("amqp: replay dead letter %s of %s: %w", id, group, err)
		}
		if err := ack(); err != nil {
			return false, fmt.Errorf("amqp: remove replayed dead letter %s of %s: %w", id, group, err)
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%w: %s in group %s", ErrDeadLetterNotFound, id, group)
	}
	return nil
}

// PurgeDeadLetters removes every dead letter of group and returns how many.
func (t *Transport) PurgeDeadLetters(ctx context.Context, group string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := t.tp.checkDeadGroup(group); err != nil {
		return 0, err
	}
	n := 0
	q := t.tp.deadQueue(group)
	err := t.admin.do(func(ch *amqp091.Channel, _ map[string]bool) error {
		if _, err := ch.QueueDeclarePassive(q, true, false, false, false, nil); err != nil {
			if isNotFound(err) {
				return nil
			}
			return err
		}
		var err error
		n, err = ch.QueuePurge(q, false)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("amqp: purge %q: %w", q, err)
	}
	return n, nil
}

// browse gets the messages of group's dead-letter queue one by one on a
// channel of its own, calling fn until it returns false or the queue is
// exhausted (fn's ack removes the message it was given); closing the
// channel returns the messages fn did not ack. It returns once they are
// back (returned messages reach a quorum queue after the channel closed),
// so that a removal of the group right after a listing does not take the
// dead-letter queue for empty; it waits for that at most returnWait.
func (t *Transport) browse(ctx context.Context, group string, fn func(d amqp091.Delivery, ack func() error) (bool, error)) error {
	if t.isClosed() {
		return transports.ErrClosed
	}
	if err := t.tp.checkDeadGroup(group); err != nil {
		return err
	}
	conn, err := t.pubConn.current()
	if err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("amqp: open channel: %w", err)
	}
	q := t.tp.deadQueue(group)
	info, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
	if err != nil {
		_ = ch.Close()
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("amqp: check %q: %w", q, err)
	}
	held, acked := 0, 0
	err = func() error {
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			d, ok, err := ch.Get(q, false)
			if err != nil {
				return fmt.Errorf("amqp: get from %q: %w", q, err)
			}
			if !ok {
				return nil
			}
			held++
			more, err := fn(d, func() error {
				if err := d.Ack(false); err != nil {
					return err
				}
				acked++
				return nil
			})
			if err != nil || !more {
				return err
			}
		}
	}()
	_ = ch.Close()
	if held > acked && err == nil {
		t.awaitReturned(ctx, conn, q, info.Messages-acked)
	}
	return err
}

// returnWait bounds how long browse waits for the messages it returned.
const returnWait = 2 * time.Second

// awaitReturned waits until queue q holds at least n ready messages again,
// at most returnWait: another reader or a new dead letter may change the
// count meanwhile, so it is a bound, not an error.
func (t *Transport) awaitReturned(ctx context.Context, conn *amqp091.Connection, q string, n int) {
	deadline := time.Now().Add(returnWait)
	for {
		ch, err := conn.Channel()
		if err != nil {
			return
		}
		info, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
		_ = ch.Close()
		if err != nil || info.Messages >= n || time.Now().After(deadline) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// toDeadLetter reads a message of a dead-letter queue.
func toDeadLetter(group string, d amqp091.Delivery) transports.DeadLetter {
	msg, _ := Marshaler{}.Unmarshal(d)
	attempts, _ := headerInt(d.Headers[HeaderDeadAttempts])
	at, _ := time.Parse(time.RFC3339Nano, headerString(d.Headers[HeaderDeadAt]))
	if g := headerString(d.Headers[HeaderDeadGroup]); g != "" {
		group = g
	}
	return transports.DeadLetter{
		ID:       headerString(d.Headers[HeaderDeadID]),
		Group:    group,
		Reason:   headerString(d.Headers[HeaderDeadReason]),
		Attempts: attempts,
		DeadAt:   at,
		Topic:    headerString(d.Headers[HeaderTopic]),
		Message:  msg,
	}
}

// groupQueueExists returns nil when the queue of group exists, and
// transports.GroupNotReading when it does not (a replay published to it
// by name would be dropped).
func (t *Transport) groupQueueExists(group string) error {
	if t.isClosed() {
		return transports.ErrClosed
	}
	if err := t.tp.checkDeadGroup(group); err != nil {
		return err
	}
	conn, err := t.pubConn.current() // a channel of its own on it
	if err != nil {
		return err
	}
	_, ok, err := passiveDeclare(conn, t.tp.groupQueue(group))
	switch {
	case err != nil:
		return err
	case !ok:
		return transports.GroupNotReading("amqp", group, "the events routed to queue "+t.tp.groupQueue(group))
	}
	return nil
}
