package amqp

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/busline/busline/transports"
)

// testHookDeclared, when set by a test, is told every queue the transport
// declares, so that the test can delete what it created.
var testHookDeclared func(exchange, queue string)

// topology names and declares the exchange and queues of one transport.
type topology struct {
	o Options
}

// groupQueue is the queue of consumer group group.
func (tp topology) groupQueue(group string) string { return tp.o.QueuePrefix + group }

// deadQueue is the dead-letter queue of group.
func (tp topology) deadQueue(group string) string { return tp.o.QueuePrefix + group + ".dead" }

// delayQueue is the delay queue of group for one step of the retry ladder.
func (tp topology) delayQueue(group string, step time.Duration) string {
	return tp.o.QueuePrefix + group + ".retry." + stepName(step)
}

// checkGroup reports a group whose queues (its own, its dead-letter
// queue, its delay queues) would have names longer than AMQP allows
// (ErrTooLong). It is checked before any such name reaches a channel: the
// client closes the whole connection, and every publish on it, on a name
// it cannot encode.
func (tp topology) checkGroup(group string) error {
	longest := tp.deadQueue(group)
	for _, s := range tp.o.RetryLadder {
		if q := tp.delayQueue(group, s); len(q) > len(longest) {
			longest = q
		}
	}
	if err := checkShort("queue name", longest); err != nil {
		return fmt.Errorf("group %.40q... (%d bytes): %w", group, len(group), err)
	}
	return nil
}

// checkNames reports options whose own names AMQP cannot carry: the
// exchange, the queues of scheduled events, the records queues (a long
// exchange or queue_prefix). Found at Open, not when a delayed Fire or a
// Start closes a connection.
func checkNames(o Options) error {
	if err := checkShort("exchange", o.Exchange); err != nil {
		return err
	}
	if err := (topology{o}).checkGroup(scheduleGroup); err != nil {
		return err
	}
	for _, kind := range []string{transports.RecordKindOwners, transports.RecordKindSchemas} {
		if err := checkShort("records queue", o.recordsQueue(kind)); err != nil {
			return err
		}
	}
	return nil
}

// checkDeadGroup checks, for the dead-letter commands, which take names
// from users, the two queues they touch (the group's and its dead-letter
// queue): no queue has a longer name, so its dead letters are not found.
func (tp topology) checkDeadGroup(group string) error {
	if err := checkShort("queue name", tp.deadQueue(group)); err != nil {
		return fmt.Errorf("%w: group %.40q... (%d bytes): %w", transports.ErrNotFound, group, len(group), err)
	}
	return nil
}

// step returns the smallest ladder step that is at least d, or the largest.
func (tp topology) step(d time.Duration) time.Duration {
	for _, s := range tp.o.RetryLadder {
		if s >= d {
			return s
		}
	}
	return tp.o.RetryLadder[len(tp.o.RetryLadder)-1]
}

// stepName renders a delay compactly for a queue name: 250ms, 5s, 2m, 1h.
func stepName(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	default:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	}
}

func (tp topology) baseArgs() amqp091.Table {
	a := amqp091.Table{"x-queue-type": tp.o.QueueType}
	if tp.o.QueueType == QueueClassic && tp.o.QueueVersion > 0 {
		a["x-queue-version"] = int64(tp.o.QueueVersion)
	}
	return a
}

// groupArgs are the arguments of a group's queue: MaxLen caps it, except
// the queue of scheduleGroup, which holds scheduled events due but not
// yet moved (a mover that is down for long): dropping its head would
// lose them.
func (tp topology) groupArgs(group string) amqp091.Table {
	a := tp.baseArgs()
	if tp.o.MaxLen > 0 && group != scheduleGroup {
		a["x-max-length"] = int64(tp.o.MaxLen)
		a["x-overflow"] = "drop-head"
	}
	return a
}

func (tp topology) delayArgs(group string, step time.Duration) amqp091.Table {
	a := tp.baseArgs()
	a["x-message-ttl"] = step.Milliseconds()
	a["x-dead-letter-exchange"] = ""
	a["x-dead-letter-routing-key"] = tp.groupQueue(group)
	if tp.o.QueueType == QueueQuorum {
		// Dead-letter from a quorum queue without losing messages.
		a["x-dead-letter-strategy"] = "at-least-once"
		a["x-overflow"] = "reject-publish"
	}
	return a
}

func (tp topology) declareExchange(ch *amqp091.Channel) error {
	if err := ch.ExchangeDeclare(tp.o.Exchange, "topic", true, false, false, false, nil); err != nil {
		return fmt.Errorf("amqp: declare exchange %q: %w", tp.o.Exchange, err)
	}
	return nil
}

func (tp topology) declareQueue(ch *amqp091.Channel, name string, args amqp091.Table) error {
	if err := checkShort("queue name", name); err != nil {
		return err // the client would close the connection
	}
	if _, err := ch.QueueDeclare(name, true, false, false, false, args); err != nil {
		return fmt.Errorf("amqp: declare queue %q: %w", name, err)
	}
	if testHookDeclared != nil {
		testHookDeclared(tp.o.Exchange, name)
	}
	return nil
}

// declareGroup declares the exchange, the group queue bound to topic and
// the group's dead-letter queue.
func (tp topology) declareGroup(ch *amqp091.Channel, group, topic string) error {
	if err := tp.declareExchange(ch); err != nil {
		return err
	}
	q := tp.groupQueue(group)
	if err := tp.declareQueue(ch, q, tp.groupArgs(group)); err != nil {
		return err
	}
	if err := checkShort("routing key (event name)", topic); err != nil {
		return err
	}
	if err := ch.QueueBind(q, topic, tp.o.Exchange, false, nil); err != nil {
		return fmt.Errorf("amqp: bind queue %q to %q with %q: %w", q, tp.o.Exchange, topic, err)
	}
	return tp.declareQueue(ch, tp.deadQueue(group), tp.baseArgs())
}

// isNotFound reports a broker NOT_FOUND (404) channel error.
func isNotFound(err error) bool {
	var ae *amqp091.Error
	return errors.As(err, &ae) && ae.Code == amqp091.NotFound
}

// admin is a channel for declarations and queue operations on one
// connection, reopened after an error closed it. Calls are serialized.
type admin struct {
	conn *connection

	mu       sync.Mutex
	owner    *amqp091.Connection
	ch       *amqp091.Channel
	declared map[string]bool // queues declared on owner
}

// do runs fn on the admin channel of the live connection.
func (a *admin) do(fn func(ch *amqp091.Channel, declared map[string]bool) error) error {
	conn, err := a.conn.current()
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.owner != conn {
		a.owner, a.ch, a.declared = conn, nil, map[string]bool{}
	}
	if a.ch == nil || a.ch.IsClosed() {
		if a.ch, err = conn.Channel(); err != nil {
			return fmt.Errorf("amqp: open channel: %w", err)
		}
	}
	return fn(a.ch, a.declared)
}

// ensure declares queue name with args on the admin channel unless it was
// declared on the current connection already.
func (a *admin) ensure(tp topology, name string, args amqp091.Table) error {
	return a.do(func(ch *amqp091.Channel, declared map[string]bool) error {
		if declared[name] {
			return nil
		}
		if err := tp.declareQueue(ch, name, args); err != nil {
			return err
		}
		declared[name] = true
		return nil
	})
}
