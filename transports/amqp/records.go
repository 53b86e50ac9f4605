package amqp

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/busline/busline/transports"
)

var _ transports.RecordStore = (*Transport)(nil)

// Records live in one durable stream queue per kind,
// "{queue_prefix}{exchange}.records.{kind}": an append-only log of
// operations. Folding the log gives the records:
// a put sets a key, a claim sets it only when it is absent, a delete
// removes it. Every reader folds the same log in the same order, so the
// first claim of a key wins for everybody. A stream queue needs RabbitMQ
// 3.9 or newer. The log is never trimmed (records are small and written at
// Start); each Records call appends a small sync marker, the point up to
// which it reads. Snapshots in the log (recordfold.go) keep a fold from
// reading it all.

// recordOp is one entry of a records log.
type recordOp struct {
	Op    string `json:"op"` // put, claim, delete, sync, snapshot
	Key   string `json:"key,omitempty"`
	Value []byte `json:"value,omitempty"`
	// Records and Upto make a snapshot (recordfold.go): every record
	// right after the entry at offset Upto.
	Records map[string][]byte `json:"records,omitempty"`
	Upto    int64             `json:"upto,omitempty"`
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
		// A dial Close aborted (transports.ErrClosed) is not tried again.
		if err = t.recordsOnce(ctx, kind, fn); err == nil || attempt == 5 || errors.Is(err, transports.ErrClosed) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (after %w)", ctx.Err(), err)
		case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
		}
	}
}

// recordsOnce runs fn on a channel of a connection of its own, bounded
// by ctx (dialFor): a broker that stops answering does not hold the
// caller (a bus's Start, say) past ctx.
func (t *Transport) recordsOnce(ctx context.Context, kind string, fn func(ch *amqp091.Channel) error) error {
	conn, release, err := t.dialFor(ctx, t.connName("records"))
	if err != nil {
		return fmt.Errorf("amqp: records %s: %w", kind, err)
	}
	defer release()
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

// readStream consumes queue on ch from offset (an x-stream-offset value)
// and calls each with every entry and its offset until each returns true.
// attached, when not nil, runs once the consumer is attached, before the
// first entry is read. readStream acknowledges what it read and cancels
// its consumer before it returns, so that ch can read again.
func readStream(ctx context.Context, ch *amqp091.Channel, queue string, offset any, attached func() error, each func(offset int64, d amqp091.Delivery) bool) error {
	const prefetch = 256
	if err := ch.Qos(prefetch, 0, false); err != nil {
		return fmt.Errorf("amqp: qos: %w", err)
	}
	tag := "busline-records-" + rand.Text()
	deliveries, err := ch.ConsumeWithContext(ctx, queue, tag, false, false, false, false, amqp091.Table{"x-stream-offset": offset})
	if err != nil {
		return fmt.Errorf("amqp: read %q: %w", queue, err)
	}
	var last amqp091.Delivery
	unacked := false
	defer func() {
		if unacked {
			_ = last.Ack(true)
		}
		_ = ch.Cancel(tag, false)
	}()
	if attached != nil {
		if err := attached(); err != nil {
			return err
		}
	}
	for n := 1; ; n++ {
		var ok bool
		select {
		case <-ctx.Done():
			return fmt.Errorf("amqp: read %q: %w", queue, ctx.Err())
		case last, ok = <-deliveries:
		}
		if !ok {
			return fmt.Errorf("amqp: read %q: channel closed", queue)
		}
		unacked = true
		at, ok := streamOffset(last)
		if !ok {
			return fmt.Errorf("amqp: read %q: an entry without x-stream-offset", queue)
		}
		if each(at, last) {
			return nil
		}
		if n%(prefetch/2) == 0 { // a stream consumer gets more only after acks
			unacked = false
			if err := last.Ack(true); err != nil {
				return fmt.Errorf("amqp: read %q: %w", queue, err)
			}
		}
	}
}

// appendNearEnd appends op to the log in queue and returns its message ID
// and the offset of an entry at or before it, near the log's end: a
// consumer attached at the log's last chunk before the append gets as its
// first entry one of that chunk, or op itself when the log was empty.
func appendNearEnd(ctx context.Context, ch *amqp091.Channel, queue string, op recordOp) (id string, near int64, err error) {
	err = readStream(ctx, ch, queue, "last", func() error {
		id, err = appendRecord(ctx, ch, queue, op)
		return err
	}, func(offset int64, _ amqp091.Delivery) bool {
		near = offset
		return true
	})
	return id, near, err
}

// foldEnd is what a fold found at its own entry.
type foldEnd struct {
	records map[string][]byte
	first   int64 // the offset of the first entry read
	offset  int64 // the entry's offset
	base    int64 // the last offset the fold's base covers: -1 for the log's start
}

// errNoBase reports a fold that started after the log's first entry and
// met no snapshot covering the entries before it: it must read from the
// first.
var errNoBase = errors.New("amqp: records fold met no snapshot")

// foldRecords reads the log in queue from offset from (0: the first
// entry) up to and including the entry with message ID until, which must
// lie at or after from, applying every operation (recordfold.go), and
// returns the records right after that entry. A fold from a later offset
// that meets no snapshot covering what it skipped returns errNoBase.
func foldRecords(ctx context.Context, ch *amqp091.Channel, queue, until string, from int64) (foldEnd, error) {
	var offset any = "first"
	if from > 0 {
		offset = from
	}
	f := newFolder()
	end := foldEnd{first: -1}
	err := readStream(ctx, ch, queue, offset, nil, func(at int64, d amqp091.Delivery) bool {
		if end.first < 0 {
			end.first = at
		}
		var op recordOp
		if json.Unmarshal(d.Body, &op) == nil {
			f.add(at, op)
		}
		end.offset = at
		return d.MessageId == until
	})
	if err != nil {
		return foldEnd{}, err
	}
	records, base, ok := f.result()
	if !ok {
		if from > 0 {
			return foldEnd{}, errNoBase
		}
		// The log's first entries are gone (a retention policy): fold
		// what is left, as a reader without snapshots would.
		records, base = map[string][]byte{}, -1
		for _, h := range f.held {
			applyRecordOp(records, h.op)
		}
	}
	end.records, end.base = records, base
	return end, nil
}

// appendAndFoldOn appends op to the log in queue on ch and folds the log
// up to it: from readBack entries before the log's end when a snapshot
// there covers the rest, else from the first entry.
func appendAndFoldOn(ctx context.Context, ch *amqp091.Channel, queue string, op recordOp) (foldEnd, error) {
	id, near, err := appendNearEnd(ctx, ch, queue, op)
	if err != nil {
		return foldEnd{}, err
	}
	end, err := foldRecords(ctx, ch, queue, id, max(0, near-readBack))
	if errors.Is(err, errNoBase) {
		end, err = foldRecords(ctx, ch, queue, id, 0)
	}
	return end, err
}

// streamOffset returns the offset RabbitMQ gives a delivery from a stream.
func streamOffset(d amqp091.Delivery) (int64, bool) {
	switch v := d.Headers["x-stream-offset"].(type) {
	case int64:
		return v, true
	case int32:
		return int64(v), true
	}
	return 0, false
}

// appendOnly appends op to the log of kind.
func (t *Transport) appendOnly(ctx context.Context, kind string, op recordOp) error {
	return t.recordsSession(ctx, kind, func(ch *amqp091.Channel) error {
		_, err := appendRecord(ctx, ch, t.RecordsQueue(kind), op)
		return err
	})
}

// appendAndFold appends op to the log of kind, then folds the log up to
// it (appendAndFoldOn). When the fold's base lies more than snapshotEvery
// entries before op, it appends a snapshot.
func (t *Transport) appendAndFold(ctx context.Context, kind string, op recordOp) (records map[string][]byte, err error) {
	err = t.recordsSession(ctx, kind, func(ch *amqp091.Channel) error {
		q := t.RecordsQueue(kind)
		end, err := appendAndFoldOn(ctx, ch, q, op)
		if err != nil {
			return err
		}
		records = end.records
		if end.offset-end.base > snapshotEvery {
			// Best effort: a fold without it reads further back, no more.
			if _, err := appendRecord(ctx, ch, q, recordOp{Op: "snapshot", Records: records, Upto: end.offset}); err != nil {
				t.log.Warn("records snapshot not appended: folds of this log read it whole until one is", slog.String("queue", q), slog.Any("error", err))
			}
		}
		return nil
	})
	return records, err
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
	records, err := t.appendAndFold(ctx, kind, recordOp{Op: "claim", Key: key, Value: value})
	return records[key], err
}

// Records implements transports.RecordStore: it appends a sync marker and
// folds the log up to it.
func (t *Transport) Records(ctx context.Context, kind string) (map[string][]byte, error) {
	if err := transports.ValidateRecord(kind, "x"); err != nil {
		return nil, err
	}
	records, err := t.appendAndFold(ctx, kind, recordOp{Op: "sync"})
	return records, err
}

// DeleteRecord implements transports.RecordStore: it appends a delete.
func (t *Transport) DeleteRecord(ctx context.Context, kind, key string) error {
	if err := transports.ValidateRecord(kind, key); err != nil {
		return err
	}
	return t.appendOnly(ctx, kind, recordOp{Op: "delete", Key: key})
}
