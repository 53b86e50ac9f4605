package amqp

import (
	"context"
	"errors"
	"fmt"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/busline/busline/transports"
)

var _ transports.GroupRemover = (*Transport)(nil)

// RemoveGroup implements transports.GroupRemover: it deletes the group's
// queue, with the events it holds, and its delay queues (those of the
// URL's retry ladder), and its dead-letter queue when it is empty or
// opts.DeadLetters says the dead letters go too.
// A queue with a consumer attached is in use; without opts.Force it is
// deleted only while unused (RabbitMQ checks at the deletion itself).
func (t *Transport) RemoveGroup(ctx context.Context, group string, opts transports.RemoveGroupOptions) error {
	if t.isClosed() {
		return transports.ErrClosed
	}
	if err := transports.CheckGroupName(group); err != nil {
		return err
	}
	if t.tp.checkDeadGroup(group) != nil {
		return fmt.Errorf("%w: amqp: no consumer group %q (no queue can have a name this long)", transports.ErrNotFound, group)
	}
	conn, release, err := t.dialFor(ctx, "busline group remove")
	if err != nil {
		return err
	}
	defer func() { release() }() // the connection of the moment
	q, found, err := passiveDeclare(conn, t.tp.groupQueue(group))
	if err != nil {
		return err
	}
	dq, dead, err := passiveDeclare(conn, t.tp.deadQueue(group))
	if err != nil {
		return err
	}
	owned := false
	if !found {
		// Read only when needed: every read of the records appends to
		// their log.
		owners, err := t.Records(ctx, transports.RecordKindOwners)
		if err != nil && !errors.Is(err, transports.ErrUnsupported) {
			return err
		}
		_, owned = owners[group]
		if !owned && (!dead || (dq.Messages > 0 && !opts.DeadLetters)) {
			return transports.GroupGone("amqp", group, dead && dq.Messages > 0)
		}
	}
	live := found && q.Consumers > 0
	if live && !opts.Force {
		return fmt.Errorf("%w: amqp: queue %q has %d consumers", transports.ErrGroupInUse, q.Name, q.Consumers)
	}
	if found {
		// RabbitMQ checks "unused" at the deletion itself, but a quorum
		// queue cannot be deleted so (a connection error): for one, the
		// consumer count read above is the check.
		ifUnused := !opts.Force && t.o.QueueType != QueueQuorum
		err := deleteQueue(conn, t.tp.groupQueue(group), ifUnused)
		var ae *amqp091.Error
		if ifUnused && errors.As(err, &ae) && ae.Code == amqp091.NotImplemented {
			// A quorum queue made under another URL: on a new connection.
			release()
			release = func() {}
			if conn, release, err = t.dialFor(ctx, "busline group remove"); err != nil {
				release = func() {}
				return err
			}
			err = deleteQueue(conn, t.tp.groupQueue(group), false)
		}
		if err != nil {
			return err
		}
	}
	// A bus still reading the group (--force) made its delay queues once
	// per connection and publishes to them by name: they stay, or its
	// retries would be dropped; a removal once it stopped takes them.
	if !live {
		for _, step := range t.o.RetryLadder {
			if err := deleteQueue(conn, t.tp.delayQueue(group, step), false); err != nil {
				return err
			}
		}
	}
	if dead && (opts.DeadLetters || dq.Messages == 0) {
		// Kept when it holds dead letters, unless they go too. (Quorum
		// queues cannot be deleted if empty: the count is read first; no
		// process reads the group now to add one.)
		if err := deleteQueue(conn, t.tp.deadQueue(group), false); err != nil {
			return err
		}
	}
	if found || owned {
		if err := t.DeleteRecord(ctx, transports.RecordKindOwners, group); err != nil && !errors.Is(err, transports.ErrUnsupported) {
			return err
		}
	}
	return nil
}

// deleteQueue deletes name on a channel of its own (a failed deletion
// closes the channel). With ifUnused, RabbitMQ refuses a queue that has
// consumers: ErrGroupInUse. A queue that does not exist is no error.
func deleteQueue(conn *amqp091.Connection, name string, ifUnused bool) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("amqp: remove group: open channel: %w", err)
	}
	defer func() { _ = ch.Close() }()
	if _, err := ch.QueueDelete(name, ifUnused, false, false); err != nil {
		var ae *amqp091.Error
		switch {
		case isNotFoundErr(err):
			return nil
		case errors.As(err, &ae) && ae.Code == amqp091.PreconditionFailed:
			return fmt.Errorf("%w: amqp: queue %q: %w", transports.ErrGroupInUse, name, err)
		}
		return fmt.Errorf("amqp: delete queue %q: %w", name, err)
	}
	return nil
}
