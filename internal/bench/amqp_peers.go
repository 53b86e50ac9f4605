package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v2/pkg/amqp"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/busline/busline/transports"
)

// tunedPrefetch is the prefetch of each tuned watermill-amqp subscription.
const tunedPrefetch = 16

// rawPrefetch is the prefetch of the raw AMQP loop's consumer; it acks
// with multiple=true every rawAckEvery deliveries, or sooner when no
// delivery is waiting.
const (
	rawPrefetch = 512
	rawAckEvery = 64
)

// withQueue runs side, then deletes queue.
func (a *amqpBroker) withQueue(ctx context.Context, queue string, side func() (Side, error)) (s Side, err error) {
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanTimeout)
		defer cancel()
		if cerr := a.clean(cctx, []string{queue}, ""); cerr != nil {
			err = errors.Join(err, fmt.Errorf("bench: clean up queue %s: %w", queue, cerr))
		}
	}()
	return side()
}

// runWatermillTuned runs watermill-amqp as fast as we know how with
// publisher confirms: NewDurableQueueConfig with a pool of K publishing
// channels and ConfirmDelivery on (so K publishes wait for their confirms
// at once, as K Fire calls do), and S router handlers on the queue
// (cfg.tunedSubscribers), each
// its own subscription and channel with prefetch tunedPrefetch (a
// watermill-amqp subscription handles one message at a time).
func (a *amqpBroker) runWatermillTuned(ctx context.Context, cfg Config) (Side, error) {
	queue := a.prefix() + "watermill-tuned"
	return a.withQueue(ctx, queue, func() (Side, error) {
		wcfg := wamqp.NewDurableQueueConfig(a.dialURL)
		wcfg.Publish.ChannelPoolSize = cfg.Concurrency
		wcfg.Publish.ConfirmDelivery = true
		wcfg.Consume.Qos.PrefetchCount = tunedPrefetch
		// The queue storage Busline and the raw loop use: version 2 costs
		// the broker less per persistent message than version 1, which
		// RabbitMQ 3.10–3.12 default to.
		wcfg.Queue.Arguments = amqp091.Table{"x-queue-version": int64(2)}
		n := cfg.tunedSubscribers(a.scheme())
		name := fmt.Sprintf("watermill-amqp (tuned: %d channels, confirms, %d handlers, prefetch %d, queue version 2)", cfg.Concurrency, n, tunedPrefetch)
		return a.runWatermillConfig(ctx, cfg, name, queue, wcfg, n)
	})
}

// runRaw is a loop on amqp091 with no framework: K goroutines, each with
// its own channel in confirm mode on one connection, encode and publish
// cfg.RawBatch persistent messages
// to a durable queue (classic, version 2, as Busline's) and then wait for
// their confirms; one consumer, on a connection of its own, with prefetch
// rawPrefetch decodes each delivery and acks with multiple=true.
func (a *amqpBroker) runRaw(ctx context.Context, cfg Config) (Side, error) {
	queue := a.prefix() + "raw"
	return a.withQueue(ctx, queue, func() (Side, error) {
		// Publishing and consuming on connections of their own, as Busline
		// does: RabbitMQ's flow control blocks a whole connection, and one
		// reader goroutine per connection takes both confirms and deliveries.
		conn, err := amqp091.Dial(a.dialURL)
		if err != nil {
			return Side{}, fmt.Errorf("bench: raw amqp: connect to %s: %w", transports.Redact(a.u), err)
		}
		defer conn.Close()
		cconn, err := amqp091.Dial(a.dialURL)
		if err != nil {
			return Side{}, fmt.Errorf("bench: raw amqp: connect to %s: %w", transports.Redact(a.u), err)
		}
		defer cconn.Close()
		ch, err := cconn.Channel()
		if err != nil {
			return Side{}, fmt.Errorf("bench: raw amqp: %w", err)
		}
		if _, err := ch.QueueDeclare(queue, true, false, false, false, amqp091.Table{"x-queue-version": int64(2)}); err != nil {
			return Side{}, fmt.Errorf("bench: raw amqp: declare %s: %w", queue, err)
		}
		if err := ch.Qos(rawPrefetch, 0, false); err != nil {
			return Side{}, fmt.Errorf("bench: raw amqp: %w", err)
		}
		deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
		if err != nil {
			return Side{}, fmt.Errorf("bench: raw amqp: consume: %w", err)
		}
		rec := newRecorder(cfg.Events)
		var wg sync.WaitGroup
		var readErr error
		wg.Go(func() { readErr = rawAMQPConsumer(deliveries, rec) })
		pubs := make(chan *amqp091.Channel, cfg.Concurrency)
		for range cfg.Concurrency {
			pc, err := conn.Channel()
			if err == nil {
				err = pc.Confirm(false)
			}
			if err != nil {
				return Side{}, fmt.Errorf("bench: raw amqp: publishing channel: %w", err)
			}
			pubs <- pc
		}
		p := newPayload(cfg.Size)
		side, err := measureBatches(ctx, cfg, "amqp091 loop (async confirms, prefetch, multiple acks)", rec, cfg.RawBatch, func(ctx context.Context, n int) error {
			pc := <-pubs
			defer func() { pubs <- pc }()
			dcs := make([]*amqp091.DeferredConfirmation, 0, n)
			for range n {
				body, err := json.Marshal(p) // every side encodes each event
				if err != nil {
					return err
				}
				dc, err := pc.PublishWithDeferredConfirmWithContext(ctx, "", queue, false, false, rawAMQPPublishing(cfg.Envelope, time.Now(), body))
				if err != nil {
					return err
				}
				dcs = append(dcs, dc)
			}
			for _, dc := range dcs {
				ok, err := dc.WaitContext(ctx)
				if err != nil {
					return err
				}
				if !ok {
					return errors.New("bench: raw amqp: publish nacked")
				}
			}
			return nil
		})
		_ = ch.Cancel("", false)
		_ = ch.Close() // ends deliveries
		wg.Wait()
		if err == nil && readErr != nil {
			err = readErr
		}
		return side, err
	})
}

// rawAMQPPublishing is the message the raw loop fires at now: persistent,
// content type application/json, the fire time in a number header; with
// envelope, what Busline's messages carry instead: its envelope headers,
// the UUID in _watermill_message_uuid and in the message-id property, and
// the timestamp property.
func rawAMQPPublishing(envelope bool, now time.Time, body []byte) amqp091.Publishing {
	p := amqp091.Publishing{DeliveryMode: amqp091.Persistent, ContentType: "application/json", Body: body}
	if !envelope {
		p.Headers = amqp091.Table{sentAtKey: now.UnixNano()}
		return p
	}
	id := rawID()
	p.Headers = amqp091.Table{wamqp.DefaultMessageUUIDHeaderKey: id}
	putPeerMetadata(func(k, v string) { p.Headers[k] = v }, newStamp(true, now), id)
	p.MessageId, p.Timestamp = id, now.UTC()
	return p
}

// rawAMQPSentAt reads the fire time rawAMQPPublishing wrote.
func rawAMQPSentAt(h amqp091.Table) time.Time {
	if ns, ok := h[sentAtKey].(int64); ok {
		return time.Unix(0, ns)
	}
	return peerSentAt(func(k string) string { s, _ := h[k].(string); return s })
}

// rawAMQPConsumer handles deliveries until the channel closes.
func rawAMQPConsumer(deliveries <-chan amqp091.Delivery, rec *recorder) error {
	var unacked int
	var last amqp091.Delivery
	handle := func(d amqp091.Delivery) error {
		var p payload
		if err := json.Unmarshal(d.Body, &p); err != nil {
			return fmt.Errorf("bench: raw amqp: %w", err)
		}
		rec.record(rawAMQPSentAt(d.Headers))
		last, unacked = d, unacked+1
		if unacked >= rawAckEvery {
			unacked = 0
			return d.Ack(true)
		}
		return nil
	}
	for {
		var d amqp091.Delivery
		var ok bool
		select {
		case d, ok = <-deliveries:
		default:
			// Nothing waiting: acknowledge what was handled, then block.
			if unacked > 0 {
				unacked = 0
				if err := last.Ack(true); err != nil {
					return err
				}
			}
			d, ok = <-deliveries
		}
		if !ok {
			return nil
		}
		if err := handle(d); err != nil {
			return err
		}
	}
}
