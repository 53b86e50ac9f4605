package redisstream

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// acker sends acknowledgements in batches: each round trip is one XACK of
// every ID acked since the previous one, so acks cost no round trip of
// their own under load and add no delay when idle. Failed XACKs are
// retried with backoff; close makes a last attempt with a fresh context.
type acker struct {
	s    *subscription
	mu   sync.Mutex
	ids  []string
	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

const (
	ackChunk        = 1000
	ackFlushTimeout = 5 * time.Second
)

func newAcker(s *subscription) *acker {
	a := &acker{s: s, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go a.run()
	return a
}

// add queues an acknowledgement of id.
func (a *acker) add(id string) {
	a.mu.Lock()
	a.ids = append(a.ids, id)
	a.mu.Unlock()
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

func (a *acker) take() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	ids := a.ids
	a.ids = nil
	return ids
}

func (a *acker) putBack(ids []string) {
	a.mu.Lock()
	a.ids = append(ids, a.ids...)
	a.mu.Unlock()
}

func (a *acker) run() {
	defer close(a.done)
	var bo backoff
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-a.stop
		cancel()
	}()
	for {
		select {
		case <-a.kick:
		case <-a.stop:
			a.final()
			return
		}
		ids := a.take()
		if len(ids) == 0 {
			continue
		}
		if err := a.send(ctx, ids); err != nil {
			a.putBack(ids)
			if ctx.Err() == nil {
				a.s.log.Warn("redisstream: acknowledge failed; retrying", slog.Int("entries", len(ids)), slog.Any("error", err))
			}
			if !bo.sleep(ctx) {
				a.final()
				return
			}
			select {
			case a.kick <- struct{}{}:
			default:
			}
			continue
		}
		bo.reset()
	}
}

// final flushes what is left, retrying until ackFlushTimeout.
func (a *acker) final() {
	ctx, cancel := context.WithTimeout(context.Background(), ackFlushTimeout)
	defer cancel()
	var bo backoff
	for {
		ids := a.take()
		if len(ids) == 0 {
			return
		}
		err := a.send(ctx, ids)
		if err == nil {
			continue
		}
		a.putBack(ids)
		if !bo.sleep(ctx) {
			a.s.log.Warn("redisstream: acknowledgements lost at close; those events will be delivered again",
				slog.Int("entries", len(a.take())), slog.Any("error", err))
			return
		}
	}
}

func (a *acker) send(ctx context.Context, ids []string) error {
	s := a.s
	if len(ids) <= ackChunk {
		return s.client.XAck(ctx, s.stream, s.group, ids...).Err()
	}
	pipe := s.client.Pipeline()
	for chunk := range chunks(ids, ackChunk) {
		pipe.XAck(ctx, s.stream, s.group, chunk...)
	}
	_, err := pipe.Exec(ctx)
	if err == redis.Nil {
		err = nil
	}
	return err
}

// close stops the acker after a final flush.
func (a *acker) close() {
	close(a.stop)
	<-a.done
}
