package amqp

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/busline/busline/transports"
)

var _ transports.RecordStore = (*Transport)(nil)

// Records live in one durable stream queue per kind,
// "{queue_prefix}{exchange}.records.{kind}": an append-only log of
// operations read from its first offset. Folding the log gives the records:
// a put sets a key, a claim sets it only when it is absent, a delete
// removes it. Every reader folds the same log in the same order, so the
// first claim of a key wins for everybody. A stream queue needs RabbitMQ
// 3.9 or newer. The log is never trimmed (records are small and written at
// Start); each Records call appends a small sync marker, the point up to
// which it reads.

// recordOp is one entry of a records log.
type recordOp struct {
	Op    string `json:"op"` // put, claim, delete, sync
	Key   string `json:"key,omitempty"`
	Value []byte `json:"value,omitempty"`
}

// RecordsQueue returns the name of the stream queue that holds the records of kind.
func (t *Transport) RecordsQueue(kind string) string { return t.o.recordsQueue(kind) }

func (o Options) recordsQueue(kind string) string {
	return o.QueuePrefix + o.Exchange + ".records." + kind
}

// recordsSession is one records operation on a connection of its own:
// declaring a stream queue and publishing to it right away can fail with a
// connection error while RabbitMQ starts the stream (seen as 506
// RESOURCE_ERROR "stream not found" and 541 INTERNAL_ERROR when two
// processes declare it at once), and that must not cost the publisher
// connection. The operation is tried again a few times.
func (t *Transport) recordsSession(ctx context.Context, kind string, fn func(ch *amqp091.Channel) error) error {
	if t.isClosed() {
		return transports.ErrClosed
	}
	var err error
	for attempt := 1; ; attempt++ {
		if err = t.recordsOnce(kind, fn); err == nil || attempt == 5 {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (after %w)", ctx.Err(), err)
		case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
		}
	}
}

func (t *Transport) recordsOnce(kind string, fn func(ch *amqp091.Channel) error) error {
	conn, err := t.dial(t.connName("records"))
	if err != nil {
		return fmt.Errorf("amqp: records %s: %w", kind, err)
	}
	defer func() { _ = conn.Close() }()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("amqp: records %s: open channel: %w", kind, err)
	}
	if err := t.tp.declareQueue(ch, t.RecordsQueue(kind), amqp091.Table{"x-queue-type": "stream"}); err != nil {
		return err
	}
	return fn(ch)
}

// appendRecord appends op to the log of kind on ch and returns the message
// ID it carries, once the broker confirmed it.
func appendRecord(ctx context.Context, ch *amqp091.Channel, queue string, op recordOp) (string, error) {
	body, err := json.Marshal(op)
	if err != nil {
		return "", err
	}
	if err := ch.Confirm(false); err != nil {
		return "", fmt.Errorf("amqp: confirm mode: %w", err)
	}
	id := rand.Text()
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, false, false, amqp091.Publishing{
		MessageId:    id,
		ContentType:  "application/json",
		DeliveryMode: amqp091.Persistent,
		Body:         body,
	})
	if err != nil {
		return "", fmt.Errorf("amqp: append to %q: %w", queue, err)
	}
	acked, err := dc.WaitContext(ctx)
	switch {
	case err != nil:
		return "", fmt.Errorf("%w: append to %q: %w", ErrNotConfirmed, queue, err)
	case !acked:
		return "", fmt.Errorf("%w: append to %q: nacked", ErrNotConfirmed, queue)
	}
	return id, nil
}

// foldRecords reads the log in queue from its first entry up to and
// including the entry with message ID until, applying every operation, and
// returns the records and the value of key right after that entry.
func foldRecords(ctx context.Context, ch *amqp091.Channel, queue, until, key string) (map[string][]byte, []byte, error) {
	const prefetch = 256
	if err := ch.Qos(prefetch, 0, false); err != nil {
		return nil, nil, fmt.Errorf("amqp: qos: %w", err)
	}
	deliveries, err := ch.ConsumeWithContext(ctx, queue, "", false, false, false, false, amqp091.Table{"x-stream-offset": "first"})
	if err != nil {
		return nil, nil, fmt.Errorf("amqp: read %q: %w", queue, err)
	}
	records := map[string][]byte{}
	for n := 1; ; n++ {
		var d amqp091.Delivery
		var ok bool
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("amqp: read %q: %w", queue, ctx.Err())
		case d, ok = <-deliveries:
		}
		if !ok {
			return nil, nil, fmt.Errorf("amqp: read %q: channel closed", queue)
		}
		var op recordOp
		if json.Unmarshal(d.Body, &op) == nil {
			switch op.Op {
			case "put":
				records[op.Key] = op.Value
			case "claim":
				if _, taken := records[op.Key]; !taken {
					records[op.Key] = op.Value
				}
			case "delete":
				delete(records, op.Key)
			}
		}
		if d.MessageId == until {
			return records, records[key], nil
		}
		if n%(prefetch/2) == 0 { // a stream consumer gets more only after acks
			if err := d.Ack(true); err != nil {
				return nil, nil, fmt.Errorf("amqp: read %q: %w", queue, err)
			}
		}
	}
}

// appendOnly appends op to the log of kind.
func (t *Transport) appendOnly(ctx context.Context, kind string, op recordOp) error {
	return t.recordsSession(ctx, kind, func(ch *amqp091.Channel) error {
		_, err := appendRecord(ctx, ch, t.RecordsQueue(kind), op)
		return err
	})
}

// appendAndFold appends op to the log of kind, then folds the log up to it.
func (t *Transport) appendAndFold(ctx context.Context, kind string, op recordOp) (records map[string][]byte, stored []byte, err error) {
	err = t.recordsSession(ctx, kind, func(ch *amqp091.Channel) error {
		q := t.RecordsQueue(kind)
		id, err := appendRecord(ctx, ch, q, op)
		if err != nil {
			return err
		}
		records, stored, err = foldRecords(ctx, ch, q, id, op.Key)
		return err
	})
	return records, stored, err
}

// PutRecord implements transports.RecordStore: it appends a put.
func (t *Transport) PutRecord(ctx context.Context, kind, key string, value []byte) error {
	if err := transports.ValidateRecord(kind, key); err != nil {
		return err
	}
	return t.appendOnly(ctx, kind, recordOp{Op: "put", Key: key, Value: value})
}

// ClaimRecord implements transports.RecordStore: it appends a claim, then
// reads the log up to it; the first claim (or put) of the key in the log
// is the value stored.
func (t *Transport) ClaimRecord(ctx context.Context, kind, key string, value []byte) ([]byte, error) {
	if err := transports.ValidateRecord(kind, key); err != nil {
		return nil, err
	}
	_, stored, err := t.appendAndFold(ctx, kind, recordOp{Op: "claim", Key: key, Value: value})
	return stored, err
}

// Records implements transports.RecordStore: it appends a sync marker and
// folds the log up to it.
func (t *Transport) Records(ctx context.Context, kind string) (map[string][]byte, error) {
	if err := transports.ValidateRecord(kind, "x"); err != nil {
		return nil, err
	}
	records, _, err := t.appendAndFold(ctx, kind, recordOp{Op: "sync"})
	return records, err
}

// DeleteRecord implements transports.RecordStore: it appends a delete.
func (t *Transport) DeleteRecord(ctx context.Context, kind, key string) error {
	if err := transports.ValidateRecord(kind, key); err != nil {
		return err
	}
	return t.appendOnly(ctx, kind, recordOp{Op: "delete", Key: key})
}
