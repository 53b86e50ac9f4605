package amqp

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/busline/busline/transports"
)

var _ transports.Inspector = (*Transport)(nil)

// inspectNote says what AMQP 0-9-1 cannot report.
const inspectNote = "AMQP reports ready messages and live consumers per queue; it does not report " +
	"unacknowledged deliveries or their age (see rabbitmqctl list_queues name messages_ready messages_unacknowledged consumers)"

// Inspect implements transports.Inspector with passive queue declarations,
// which change nothing: for each group named in opts.Groups, the ready
// messages of its queue (Lag), its live consumers, and the messages of its
// dead-letter queue. AMQP 0-9-1 cannot list queues and keeps no stream per
// event, so without opts.Groups it returns an error wrapping
// transports.ErrUnsupported; Pending and OldestPending are Unknown.
func (t *Transport) Inspect(ctx context.Context, opts transports.InspectOptions) (*transports.Inspection, error) {
	if len(opts.Groups) == 0 {
		return nil, fmt.Errorf("%w: AMQP 0-9-1 cannot list the queues of a broker; name the consumer groups to inspect", transports.ErrUnsupported)
	}
	conn, release, err := t.dialFor(ctx, "busline inspect")
	if err != nil {
		return nil, err
	}
	defer release()
	out := &transports.Inspection{Notes: []string{inspectNote}}
	if len(opts.Events) > 0 {
		out.Notes = append(out.Notes, "AMQP keeps no stream per event: events are routed to the queues of the groups bound to them")
	}
	groups := slices.Clone(opts.Groups)
	slices.Sort(groups)
	for _, g := range slices.Compact(groups) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if t.tp.checkDeadGroup(g) != nil {
			out.Notes = append(out.Notes, fmt.Sprintf("group %.40q...: no queue can have a name this long (AMQP allows %d bytes)", g, maxShortString))
			continue
		}
		q, qok, err := passiveDeclare(conn, t.o.QueuePrefix+g)
		if err != nil {
			return nil, err
		}
		dq, dok, err := passiveDeclare(conn, t.o.QueuePrefix+g+".dead")
		if err != nil {
			return nil, err
		}
		if !qok && !dok {
			out.Notes = append(out.Notes, fmt.Sprintf("group %s: no queue %q on the broker", g, t.o.QueuePrefix+g))
			continue
		}
		gi := transports.GroupInfo{
			Group: g, Queue: q.Name, Consumers: q.Consumers,
			Pending: transports.Unknown, Lag: int64(q.Messages), OldestPending: transports.Unknown,
			DeadLetters: int64(dq.Messages),
		}
		if !qok {
			gi.Queue, gi.Lag = "", 0
		}
		out.Groups = append(out.Groups, gi)
	}
	slices.SortFunc(out.Groups, func(a, b transports.GroupInfo) int { return strings.Compare(a.Group, b.Group) })
	return out, nil
}

// passiveDeclare checks queue name on a channel of its own (a missing queue
// closes the channel) and reports whether it exists.
func passiveDeclare(conn *amqp091.Connection, name string) (amqp091.Queue, bool, error) {
	ch, err := conn.Channel()
	if err != nil {
		return amqp091.Queue{}, false, fmt.Errorf("amqp: inspect: open channel: %w", err)
	}
	defer func() { _ = ch.Close() }()
	q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
	if err != nil {
		if isNotFoundErr(err) {
			return amqp091.Queue{}, false, nil
		}
		return amqp091.Queue{}, false, fmt.Errorf("amqp: inspect queue %q: %w", name, err)
	}
	return q, true, nil
}

// dialFor opens a connection of its own for one operation, named for
// rabbitmqctl list_connections, with connection_timeout; on a closed
// transport it returns transports.ErrClosed. The dial, and then the
// connection, end with ctx, with Close and with DropConnections: the
// connection is closed (within closeHandshake), which fails the calls
// still waiting on it, since amqp091 waits for a broker's replies without
// a deadline of its own. The caller calls release when done, which closes
// the connection within closeHandshake too.
func (t *Transport) dialFor(ctx context.Context, name string) (conn *amqp091.Connection, release func(), err error) {
	if t.isClosed() {
		return nil, nil, transports.ErrClosed
	}
	opCtx, done := joinCancel(t.dialCtx, ctx)
	conn, err = t.dialWith(opCtx, name, nil)
	if err != nil {
		done()
		return nil, nil, fmt.Errorf("amqp: connect to %s: %w", t.redacted, accessRefused(err))
	}
	closeConn := func() { _ = conn.CloseDeadline(time.Now().Add(closeHandshake)) }
	stop := context.AfterFunc(opCtx, closeConn)
	return conn, func() {
		if stop() {
			closeConn()
		}
		done()
	}, nil
}

func isNotFoundErr(err error) bool {
	e, ok := err.(*amqp091.Error)
	return ok && e.Code == amqp091.NotFound
}

var _ transports.GroupFinder = (*Transport)(nil)

// FindGroup implements transports.GroupFinder: it reports whether the
// queue of group, or its dead-letter queue, exists, with passive
// declarations that change nothing. transports.CheckGroupKnown asks it
// before reading the owner records, whose every read appends a sync
// marker to their log.
func (t *Transport) FindGroup(ctx context.Context, group string) (bool, error) {
	if t.isClosed() {
		return false, transports.ErrClosed
	}
	if t.tp.checkDeadGroup(group) != nil {
		return false, nil
	}
	conn, release, err := t.dialFor(ctx, "busline inspect")
	if err != nil {
		return false, err
	}
	defer release()
	for _, q := range []string{t.o.QueuePrefix + group, t.o.QueuePrefix + group + ".dead"} {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		_, ok, err := passiveDeclare(conn, q)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}
