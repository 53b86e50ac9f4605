package redisstream

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/internal/redisurl"
	"github.com/busline/busline/transports"
)

// Fields a dead-letter entry adds to the fields of the original entry.
const (
	fieldReason   = "reason"
	fieldAttempts = "attempts"
	fieldGroup    = "group"
	fieldTopic    = "topic"
	fieldDeadAt   = "dead_at"
)

// ErrDeadLetterNotFound is returned by ReplayDeadLetter for an ID that is
// not in the group's dead-letter stream.
var ErrDeadLetterNotFound = fmt.Errorf("redisstream: dead letter %w", transports.ErrNotFound)

// metaType is the CloudEvents type (event name) of a Busline envelope.
const metaType = "ce-type"

// DeadLetter appends msg to the dead-letter stream of group,
// "{prefix}dead:{group}", with the fields of the original entry (still
// readable by watermill-redisstream) plus reason, attempts, group, topic
// and dead_at. It returns once Redis replied to the XADD.
func (t *Transport) DeadLetter(ctx context.Context, group string, msg *message.Message, reason string, attempts int) error {
	values, err := encode(msg)
	if err != nil {
		return err
	}
	topic := ""
	if info := transports.DeliveryInfoFrom(msg.Context()); info != nil {
		topic = info.Topic
	}
	if topic == "" {
		topic = msg.Metadata.Get(metaType)
	}
	values = append(values,
		fieldReason, reason,
		fieldAttempts, strconv.Itoa(attempts),
		fieldGroup, group,
		fieldTopic, topic,
		fieldDeadAt, time.Now().UTC().Format(time.RFC3339Nano),
	)
	args := &redis.XAddArgs{Stream: t.DeadLetterKey(group), Values: values}
	if t.opts.DeadMaxLen > 0 {
		args.MaxLen, args.Approx = t.opts.DeadMaxLen, true
	}
	if err := t.client.XAdd(ctx, args).Err(); err != nil {
		return fmt.Errorf("redisstream: dead-letter %s of %s: %w", msg.UUID, group, err)
	}
	return nil
}

// DeadLetters lists up to limit dead letters of group, oldest first
// (limit <= 0: all). A dead letter whose original entry does not decode
// (a poison entry) carries its raw payload and the entry ID as UUID when
// it had none.
func (t *Transport) DeadLetters(ctx context.Context, group string, limit int) ([]transports.DeadLetter, error) {
	key := t.DeadLetterKey(group)
	var cmd *redis.XMessageSliceCmd
	if limit > 0 {
		cmd = t.client.XRangeN(ctx, key, "-", "+", int64(limit))
	} else {
		cmd = t.client.XRange(ctx, key, "-", "+")
	}
	xms, err := cmd.Result()
	if err != nil {
		return nil, fmt.Errorf("redisstream: list dead letters of %s: %w", group, err)
	}
	out := make([]transports.DeadLetter, 0, len(xms))
	for _, xm := range xms {
		out = append(out, parseDeadLetter(group, xm))
	}
	return out, nil
}

func parseDeadLetter(group string, xm redis.XMessage) transports.DeadLetter {
	str := func(k string) string { s, _ := xm.Values[k].(string); return s }
	msg, _ := decode(xm.ID, xm.Values)
	attempts, _ := strconv.Atoi(str(fieldAttempts))
	deadAt, _ := time.Parse(time.RFC3339Nano, str(fieldDeadAt))
	if g := str(fieldGroup); g != "" {
		group = g
	}
	return transports.DeadLetter{
		ID:       xm.ID,
		Group:    group,
		Reason:   str(fieldReason),
		Attempts: attempts,
		DeadAt:   deadAt,
		Topic:    str(fieldTopic),
		Message:  msg,
	}
}

// isEntryID reports whether id is a full stream entry ID,
// milliseconds-sequence, each a 64-bit number: "ms" alone would name the
// first entry of that millisecond to XRANGE and the entry ms-0 to XDEL.
func isEntryID(id string) bool {
	ms, seq, ok := strings.Cut(id, "-")
	if !ok {
		return false
	}
	_, err1 := strconv.ParseUint(ms, 10, 64)
	_, err2 := strconv.ParseUint(seq, 10, 64)
	return err1 == nil && err2 == nil
}

// ReplayDeadLetter appends the dead letter id back to its event's stream
// with the original event ID, marked so that only group handles it (the
// other groups of the event acknowledge it unseen), then deletes it from
// the dead-letter stream. A replayed entry reaches group as a first
// delivery (attempt 1).
func (t *Transport) ReplayDeadLetter(ctx context.Context, group, id string) error {
	key := t.DeadLetterKey(group)
	if !isEntryID(id) {
		return fmt.Errorf("%w: %q in %s (want a stream entry ID such as 1700000000000-0)", ErrDeadLetterNotFound, id, key)
	}
	xms, err := t.client.XRangeN(ctx, key, id, id, 1).Result()
	if err != nil {
		return fmt.Errorf("redisstream: read dead letter %s of %s: %w", id, group, err)
	}
	if len(xms) == 0 || xms[0].ID != id {
		return fmt.Errorf("%w: %s in %s", ErrDeadLetterNotFound, id, key)
	}
	dl := parseDeadLetter(group, xms[0])
	if dl.Topic == "" {
		return fmt.Errorf("redisstream: dead letter %s of %s names no event", id, group)
	}
	if reads, err := t.groupReads(ctx, dl.Topic, group); err != nil {
		return err
	} else if !reads {
		return transports.GroupNotReading("redisstream", group, dl.Topic)
	}
	var values []any
	if _, err := decode(id, xms[0].Values); err == nil {
		msg := dl.Message.Copy()
		msg.Metadata.Set(metaReplayGroup, group)
		if values, err = encode(msg); err != nil {
			return err
		}
	} else {
		// Undecodable: send the original fields back as they were.
		for _, f := range []string{fieldUUID, fieldMetadata, fieldPayload} {
			if v, ok := xms[0].Values[f]; ok {
				values = append(values, f, v)
			}
		}
	}
	args := &redis.XAddArgs{Stream: t.StreamKey(dl.Topic), Values: values}
	if n := t.opts.maxLen(dl.Topic); n > 0 {
		args.MaxLen, args.Approx = n, true
	}
	if err := t.client.XAdd(ctx, args).Err(); err != nil {
		return fmt.Errorf("redisstream: replay dead letter %s of %s: %w", id, group, err)
	}
	if err := t.client.XDel(ctx, key, id).Err(); err != nil {
		return fmt.Errorf("redisstream: replayed dead letter %s of %s, but deleting it failed: %w", id, group, err)
	}
	return nil
}

// PurgeDeadLetters deletes the dead-letter stream of group and returns how
// many dead letters it held.
func (t *Transport) PurgeDeadLetters(ctx context.Context, group string) (int, error) {
	key := t.DeadLetterKey(group)
	pipe := t.client.TxPipeline()
	n := pipe.XLen(ctx, key)
	pipe.Del(ctx, key)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("redisstream: purge dead letters of %s: %w", group, err)
	}
	return int(n.Val()), nil
}

// groupReads reports whether group exists on the stream of event.
func (t *Transport) groupReads(ctx context.Context, event, group string) (bool, error) {
	groups, err := t.client.XInfoGroups(ctx, t.StreamKey(event)).Result()
	if err != nil {
		if redisurl.IsServerError(err, "ERR") && strings.Contains(err.Error(), "no such key") {
			return false, nil
		}
		return false, fmt.Errorf("redisstream: groups of %s: %w", t.StreamKey(event), err)
	}
	for _, g := range groups {
		if g.Name == group {
			return true, nil
		}
	}
	return false, nil
}
