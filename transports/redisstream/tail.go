package redisstream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	wrs "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/transports"
)

var _ transports.Tailer = (*Transport)(nil)

// tailBlock bounds each blocking read of Tail, and so how long Tail takes
// to notice that its context is done.
const tailBlock = time.Second

// Tail implements transports.Tailer with XREAD, which joins no consumer
// group: it resolves the starting entry ID (the last entry of the stream
// for the default Since, 0 for SinceBeginning, the first millisecond of a
// SinceTime), then reads every later entry in batches, blocking for new
// ones. An entry that does not decode is passed to fn with Err set.
func (t *Transport) Tail(ctx context.Context, topic string, opts transports.TailOptions, fn func(transports.TailedEvent) error) error {
	key := t.StreamKey(topic)
	last, err := t.tailStart(ctx, key, opts.Since)
	if err != nil {
		return err
	}
	if opts.Ready != nil {
		opts.Ready()
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		res, err := t.client.XRead(ctx, &redis.XReadArgs{Streams: []string{key, last}, Count: 256, Block: tailBlock}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("redisstream: tail %s: XREAD: %w", key, err)
		}
		for _, s := range res {
			for _, xm := range s.Messages {
				last = xm.ID
				msg, derr := tailDecode(xm)
				if err := fn(transports.TailedEvent{Topic: topic, Position: xm.ID, At: idTime(xm.ID), Message: msg, Err: derr}); err != nil {
					return err
				}
			}
		}
	}
}

// tailStart returns the ID after which Tail reads.
func (t *Transport) tailStart(ctx context.Context, key string, since transports.Since) (string, error) {
	if since.IsBeginning() {
		return "0-0", nil
	}
	if at, ok := since.Time(); ok {
		ms := at.UnixMilli()
		if ms <= 0 {
			return "0-0", nil
		}
		return strconv.FormatInt(ms-1, 10) + "-18446744073709551615", nil
	}
	l, err := t.client.XRevRangeN(ctx, key, "+", "-", 1).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("redisstream: tail %s: XREVRANGE: %w", key, err)
	}
	if len(l) == 0 {
		return "0-0", nil
	}
	return l[0].ID, nil
}

// tailDecode reads an entry with watermill-redisstream's unmarshaller (the
// entry layout both sides share); on failure it returns the raw payload.
func tailDecode(xm redis.XMessage) (*message.Message, error) {
	msg, err := func() (m *message.Message, err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%v", r)
			}
		}()
		return wrs.DefaultMarshallerUnmarshaller{}.Unmarshal(xm.Values)
	}()
	if err == nil {
		return msg, nil
	}
	id, _ := xm.Values[wrs.UUIDHeaderKey].(string)
	if id == "" {
		id = xm.ID
	}
	payload, _ := xm.Values["payload"].(string)
	return message.NewMessage(id, []byte(payload)), fmt.Errorf("redisstream: entry %s does not decode: %w", xm.ID, err)
}
