package amqp

import (
	"context"
	"fmt"
	"strconv"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/busline/busline/transports"
)

var _ transports.Tailer = (*Transport)(nil)

// Tail implements transports.Tailer: on a connection of its own it binds a
// server-named, exclusive, auto-delete queue to the exchange with topic as
// routing key and consumes it with automatic acknowledgement, so no group
// queue is touched and the queue disappears with the connection. A topic
// exchange keeps no history: a Since other than the default is an error
// wrapping transports.ErrUnsupported.
func (t *Transport) Tail(ctx context.Context, topic string, opts transports.TailOptions, fn func(transports.TailedEvent) error) error {
	if !opts.Since.IsNew() {
		return fmt.Errorf("%w: AMQP keeps no history of an event (a topic exchange routes and forgets); tail follows new events only", transports.ErrUnsupported)
	}
	// The connection ends with ctx (dialFor), also during the setup below
	// on a broker that stopped answering: ctx's end is then the error.
	conn, release, err := t.dialFor(ctx, "busline tail "+topic)
	if err != nil {
		return err
	}
	defer release()
	failed := func(err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		return failed(fmt.Errorf("amqp: tail: open channel: %w", err))
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return failed(fmt.Errorf("amqp: tail: declare queue: %w", err))
	}
	if err := ch.QueueBind(q.Name, topic, t.o.Exchange, false, nil); err != nil {
		return failed(fmt.Errorf("amqp: tail: bind to exchange %q with %q: %w", t.o.Exchange, topic, err))
	}
	deliveries, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		return failed(fmt.Errorf("amqp: tail: consume: %w", err))
	}
	closed := conn.NotifyClose(make(chan *amqp091.Error, 1))
	if opts.Ready != nil {
		opts.Ready()
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e := <-closed:
			return failed(fmt.Errorf("amqp: tail: connection closed: %v", e))
		case d, ok := <-deliveries:
			if !ok {
				return failed(fmt.Errorf("amqp: tail: the broker ended the consumer"))
			}
			msg, derr := Marshaler{}.Unmarshal(d)
			ev := transports.TailedEvent{
				Topic: topic, Position: strconv.FormatUint(d.DeliveryTag, 10),
				At: d.Timestamp, Message: msg, Err: derr,
			}
			if err := fn(ev); err != nil {
				return err
			}
		}
	}
}
