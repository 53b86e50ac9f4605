package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wrs "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
)

// rawReadCount is the most entries one XREADGROUP of the raw Redis loop asks for.
const rawReadCount = 512

// withStream runs side on a fresh stream name and deletes the stream after.
func (r *redisBroker) withStream(ctx context.Context, suffix string, side func(stream string) (Side, error)) (s Side, err error) {
	stream := r.prefix() + suffix
	defer func() {
		c := redis.NewClient(r.options)
		defer c.Close()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanTimeout)
		defer cancel()
		if cerr := c.Del(cctx, stream).Err(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("bench: delete %s: %w", stream, cerr))
		}
	}()
	return side(stream)
}

// tunedClient is a client whose pool holds a connection for each of the
// K publishers and each of the K blocking readers, with room to spare.
func (r *redisBroker) tunedClient(k int) *redis.Client {
	o := *r.options
	o.PoolSize = 2*k + 8
	return redis.NewClient(&o)
}

// runWatermillTuned runs watermill-redisstream as fast as we know how:
// S subscribers (cfg.tunedSubscribers) in one consumer group (consumers
// "c1".."cS"), each behind its own router handler, so that S messages are
// handled at once (a redisstream subscription handles one message at a
// time); one publisher;
// one client for all of them whose pool holds a connection for every
// publisher and every blocking reader; no trimming.
func (r *redisBroker) runWatermillTuned(ctx context.Context, cfg Config) (Side, error) {
	return r.withStream(ctx, "watermill-tuned", func(stream string) (Side, error) {
		client := r.tunedClient(cfg.Concurrency)
		defer client.Close()
		pub, err := wrs.NewPublisher(wrs.PublisherConfig{Client: client}, watermill.NopLogger{})
		if err != nil {
			return Side{}, fmt.Errorf("bench: watermill-redisstream publisher: %w", err)
		}
		subs := make([]message.Subscriber, cfg.tunedSubscribers(r.scheme()))
		for i := range subs {
			sub, err := wrs.NewSubscriber(wrs.SubscriberConfig{
				Client: client, ConsumerGroup: "bench-sink", Consumer: "c" + strconv.Itoa(i+1),
			}, watermill.NopLogger{})
			if err != nil {
				return Side{}, fmt.Errorf("bench: watermill-redisstream subscriber: %w", err)
			}
			subs[i] = sub
			defer sub.Close()
		}
		name := fmt.Sprintf("watermill-redisstream (tuned: %d consumers in one group)", len(subs))
		return runRouterN(ctx, cfg, name, stream, pub, subs)
	})
}

// runRaw is a loop on go-redis with no framework: K goroutines each send
// cfg.RawBatch XADDs in one pipeline; one reader reads up to rawReadCount
// entries per XREADGROUP and sends the XACK of what it handled in the same
// pipeline as its next read. The handler decodes the JSON payload, as
// every side's does.
func (r *redisBroker) runRaw(ctx context.Context, cfg Config) (Side, error) {
	return r.withStream(ctx, "raw", func(stream string) (Side, error) {
		client := r.tunedClient(cfg.Concurrency)
		defer client.Close()
		const group = "bench-sink"
		if err := client.XGroupCreateMkStream(ctx, stream, group, "$").Err(); err != nil {
			return Side{}, fmt.Errorf("bench: raw redis: create group: %w", err)
		}
		rec := newRecorder(cfg.Events)
		rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		var wg sync.WaitGroup
		var readErr error
		wg.Go(func() { readErr = rawRedisReader(rctx, client, stream, group, rec) })
		defer func() { stop(); wg.Wait() }()
		p := newPayload(cfg.Size)
		side, err := measureBatches(ctx, cfg, "go-redis loop (pipelined XADD, XREADGROUP, XACK)", rec, cfg.RawBatch, func(ctx context.Context, n int) error {
			pipe := client.Pipeline()
			st := newStamp(cfg.Envelope, time.Now())
			for range n {
				body, err := json.Marshal(p) // every side encodes each event
				if err != nil {
					return err
				}
				pipe.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: rawRedisFields(st, body)})
			}
			_, err := pipe.Exec(ctx)
			return err
		})
		stop()
		wg.Wait()
		if err == nil && readErr != nil && !errors.Is(readErr, context.Canceled) {
			err = readErr
		}
		return side, err
	})
}

// rawRedisFields are the fields of an entry the raw loop fires: the fire
// time (t, Unix nanoseconds) and the payload, or with the envelope the
// layout of Busline's entries: the UUID, the envelope in one field (the
// loop's own "key=value" lines, where Busline's is msgpack) and the
// payload.
func rawRedisFields(st stamp, body []byte) []any {
	if !st.envelope {
		return []any{"t", st.text, "payload", body}
	}
	id := rawID()
	md := envelopeLines(st, id)
	return []any{wrs.UUIDHeaderKey, id, "metadata", md, "payload", body}
}

// rawRedisSentAt reads the fire time rawRedisFields wrote.
func rawRedisSentAt(values map[string]any) time.Time {
	if t, ok := values["t"].(string); ok {
		ns, _ := strconv.ParseInt(t, 10, 64)
		return time.Unix(0, ns)
	}
	md, _ := values["metadata"].(string)
	return peerSentAt(func(k string) string { return lineValue(md, k) })
}

// rawRedisReader reads and acknowledges entries until ctx ends.
func rawRedisReader(ctx context.Context, c *redis.Client, stream, group string, rec *recorder) error {
	var acks []string
	for ctx.Err() == nil {
		pipe := c.Pipeline()
		if len(acks) > 0 {
			pipe.XAck(ctx, stream, group, acks...)
		}
		read := pipe.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: group, Consumer: "c1", Streams: []string{stream, ">"},
			Count: rawReadCount, Block: 100 * time.Millisecond,
		})
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		acks = acks[:0]
		res, _ := read.Result()
		for _, s := range res {
			for _, m := range s.Messages {
				var p payload
				body, _ := m.Values["payload"].(string)
				if err := json.Unmarshal([]byte(body), &p); err != nil {
					return fmt.Errorf("bench: raw redis: entry %s: %w", m.ID, err)
				}
				rec.record(rawRedisSentAt(m.Values))
				acks = append(acks, m.ID)
			}
		}
	}
	return ctx.Err()
}
