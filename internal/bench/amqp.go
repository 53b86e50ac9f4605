package bench

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v2/pkg/amqp"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/amqp"
)

// cleanTimeout bounds the deletion of what a side created.
const cleanTimeout = 30 * time.Second

// amqpBroker runs both sides on one RabbitMQ: Busline on the exchange
// "{run}" with queue names prefixed "{run}.", watermill-amqp on the durable
// queue "{run}.watermill" through the default exchange.
type amqpBroker struct {
	u       *url.URL
	run     string
	dialURL string
	ladder  []time.Duration
}

func newAMQPBroker(u *url.URL) (*amqpBroker, error) {
	dialURL, o, err := amqp.ParseURL(u)
	if err != nil {
		return nil, err
	}
	return &amqpBroker{u: u, run: runName(), dialURL: dialURL, ladder: o.RetryLadder}, nil
}

func (a *amqpBroker) scheme() string { return a.u.Scheme }

func (a *amqpBroker) prefix() string { return a.run + "." }

func (a *amqpBroker) buslineURL() string {
	u := *a.u
	q := u.Query()
	q.Set("exchange", a.run)
	q.Set("queue_prefix", a.prefix())
	u.RawQuery = q.Encode()
	return u.String()
}

// cleanBusline deletes the group queue of the listener, its dead-letter
// queue, its delay queues and the exchange.
func (a *amqpBroker) cleanBusline(ctx context.Context) error {
	group := a.prefix() + "bench-sink"
	// The record queues hold the owner of the group and the schemas (bus Start writes them).
	queues := []string{group, group + ".dead", a.prefix() + a.run + ".records.owners", a.prefix() + a.run + ".records.schemas"}
	for _, step := range a.ladder {
		queues = append(queues, group+".retry."+stepName(step))
	}
	return a.clean(ctx, queues, a.run)
}

// stepName renders a delay as the transport names its delay queues: 250ms, 5s, 2m, 1h.
func stepName(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// clean deletes the queues that exist among queues, then exchange when not empty.
func (a *amqpBroker) clean(ctx context.Context, queues []string, exchange string) error {
	props := amqp091.NewConnectionProperties()
	props.SetClientConnectionName("busline bench cleanup")
	conn, err := amqp091.DialConfig(a.dialURL, amqp091.Config{Properties: props})
	if err != nil {
		return fmt.Errorf("connect to %s: %w", transports.Redact(a.u), err)
	}
	defer conn.Close()
	var errs []error
	for _, q := range queues {
		if err := ctx.Err(); err != nil {
			return err
		}
		ch, err := conn.Channel()
		if err != nil {
			return fmt.Errorf("open channel: %w", err)
		}
		if _, err := ch.QueueDeclarePassive(q, true, false, false, false, nil); err == nil {
			if _, err := ch.QueueDelete(q, false, false, false); err != nil {
				errs = append(errs, fmt.Errorf("delete queue %s: %w", q, err))
			}
		}
		_ = ch.Close()
	}
	if exchange != "" {
		ch, err := conn.Channel()
		if err != nil {
			return fmt.Errorf("open channel: %w", err)
		}
		if err := ch.ExchangeDelete(exchange, false, false); err != nil {
			errs = append(errs, fmt.Errorf("delete exchange %s: %w", exchange, err))
		}
		_ = ch.Close()
	}
	return errors.Join(errs...)
}

func (a *amqpBroker) runWatermill(ctx context.Context, cfg Config) (side Side, err error) {
	queue := a.prefix() + "watermill"
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanTimeout)
		defer cancel()
		if cerr := a.clean(cctx, []string{queue}, ""); cerr != nil {
			err = errors.Join(err, fmt.Errorf("bench: clean up the Watermill side: %w", cerr))
		}
	}()
	wcfg := wamqp.NewDurableQueueConfig(a.dialURL)
	pub, err := wamqp.NewPublisher(wcfg, watermill.NopLogger{})
	if err != nil {
		return Side{}, fmt.Errorf("bench: watermill-amqp publisher: %w", err)
	}
	defer pub.Close()
	sub, err := wamqp.NewSubscriber(wcfg, watermill.NopLogger{})
	if err != nil {
		return Side{}, fmt.Errorf("bench: watermill-amqp subscriber: %w", err)
	}
	defer sub.Close()
	return runRouter(ctx, cfg, "watermill-amqp (NewDurableQueueConfig)", queue, pub, sub)
}
