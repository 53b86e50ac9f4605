package redisstream

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/transports"
)

// subscriber reads as one consumer of one consumer group. Each Subscribe
// reads one event stream.
type subscriber struct {
	t   *Transport
	cfg transports.SubscriberConfig

	mu     sync.Mutex
	closed bool
	subs   []*subscription
}

// Subscribe creates the consumer group on the stream of topic if it does
// not exist (XGROUP CREATE ... MKSTREAM at the position Since says), then
// starts reading. It returns once the group exists. Cancelling ctx stops
// reading and closes the channel; messages handed out can still be acked
// or nacked until Close.
func (s *subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, transports.ErrClosed
	}
	stream := s.t.StreamKey(topic)
	if err := createGroup(ctx, s.t.client, stream, s.cfg.Group, startID(s.cfg.Since)); err != nil {
		return nil, err
	}
	sub := newSubscription(s.t, s.cfg, topic, stream)
	sub.start(ctx)
	s.subs = append(s.subs, sub)
	return sub.out, nil
}

// Close stops every subscription, waits for its goroutines, flushes the
// acknowledgements made so far and leaves every message neither acked nor
// nacked pending for this consumer. It is idempotent.
func (s *subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	subs := s.subs
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, sub := range subs {
		wg.Go(sub.close)
	}
	wg.Wait()
	s.t.forget(s)
	return nil
}

// createGroup runs XGROUP CREATE stream group start MKSTREAM; a group that
// already exists is left as it is.
func createGroup(ctx context.Context, client redis.UniversalClient, stream, group, start string) error {
	err := client.XGroupCreateMkStream(ctx, stream, group, start).Err()
	if err != nil && !isBusyGroup(err) {
		return fmt.Errorf("redisstream: create consumer group %s on %s: %w", group, stream, err)
	}
	return nil
}

func isBusyGroup(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "BUSYGROUP")
}

func isNoGroup(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "NOGROUP")
}

// startID is the last-delivered ID a new group starts at: "$" for only new
// events, "0" for the whole retained stream, and for a time t the largest
// ID before t's millisecond, so that the first event delivered is the first
// fired at or after t.
func startID(since transports.Since) string {
	if since.IsBeginning() {
		return "0"
	}
	if t, ok := since.Time(); ok {
		ms := t.UnixMilli()
		if ms <= 0 {
			return "0"
		}
		return fmt.Sprintf("%d-%d", ms-1, uint64(math.MaxUint64))
	}
	return "$"
}
