package redisstream

import (
	"context"
	"crypto/rand"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/transports"
)

// Each open subscription says it is alive in a key of its own, so that
// RemoveGroup sees a listener that has read nothing for long, or whose
// handlers hold every slot for long: Redis before 7.2 counts no empty read
// as a consumer's activity, and a quiet consumer looks as idle as a dead
// one.
const (
	// liveFor is how long a liveness key lasts without a refresh.
	liveFor = transports.GroupIdleFor
	// liveEvery is how often the keys of open subscriptions are refreshed.
	liveEvery = liveFor / 4
)

// liveKeyPrefix returns the prefix of the liveness keys of group's
// subscriptions: "{prefix}live:{group}/", then
// "{event}/{consumer}/{token}", the token told apart two subscriptions of
// one name. No group or event name holds a '/' (parseLiveKey).
func (t *Transport) liveKeyPrefix(group string) string {
	return t.opts.Prefix + "live:" + group + "/"
}

// liveness refreshes the liveness keys of a transport's open
// subscriptions, all in one pipeline every liveEvery, from the first
// subscription opened until the transport closes.
type liveness struct {
	client redis.UniversalClient
	log    *slog.Logger
	every  time.Duration // liveEvery but in tests

	mu      sync.Mutex
	keys    map[string]struct{}
	closed  bool
	running bool
	// sendMu is held by a refresh while it sets the keys, and by remove
	// while it deletes one: a refresh that read the keys before a remove
	// would otherwise set a deleted key again.
	sendMu sync.Mutex
	ctx    context.Context // ends at close: the refresher stops, a refresh under way gives up
	cancel context.CancelFunc
	done   chan struct{}
}

func newLiveness(client redis.UniversalClient, log *slog.Logger) *liveness {
	l := &liveness{client: client, log: log, every: liveEvery, keys: map[string]struct{}{}, done: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	return l
}

// add sets a new liveness key for a subscription of group on topic as
// consumer, and returns it. A failed SET is logged and retried at the
// next refresh: the key only guards removal.
func (l *liveness) add(ctx context.Context, prefix, topic, consumer string) string {
	key := prefix + topic + "/" + consumer + "/" + rand.Text()[:10]
	l.mu.Lock()
	l.keys[key] = struct{}{}
	if !l.running && !l.closed {
		l.running = true
		go l.run()
	}
	l.mu.Unlock()
	if err := l.client.Set(ctx, key, "", liveFor).Err(); err != nil && ctx.Err() == nil {
		l.log.Debug("redisstream: liveness key not set", slog.String("key", key), slog.Any("error", err))
	}
	return key
}

// remove deletes a subscription's liveness key.
func (l *liveness) remove(key string) {
	l.mu.Lock()
	delete(l.keys, key)
	l.mu.Unlock()
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = l.client.Del(ctx, key).Err()
}

func (l *liveness) run() {
	defer close(l.done)
	t := time.NewTicker(l.every)
	defer t.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
		}
		l.refresh()
	}
}

// refresh sets every open subscription's key again, in one pipeline,
// giving up after a few seconds or at close.
func (l *liveness) refresh() {
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	l.mu.Lock()
	keys := make([]string, 0, len(l.keys))
	for k := range l.keys {
		keys = append(keys, k)
	}
	l.mu.Unlock()
	if len(keys) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(l.ctx, 5*time.Second)
	defer cancel()
	_, err := l.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Set(ctx, k, "", liveFor)
		}
		return nil
	})
	if err != nil {
		l.log.Debug("redisstream: liveness keys not refreshed", slog.Int("keys", len(keys)), slog.Any("error", err))
	}
}

// close stops the refreshes (the transport is closing; its subscriptions
// deleted their keys as they closed). Only the first call does anything.
func (l *liveness) close() {
	l.mu.Lock()
	running, already := l.running, l.closed
	l.closed = true
	l.mu.Unlock()
	if already {
		return
	}
	l.cancel()
	if running {
		<-l.done
	}
}

// liveName returns the "{event}/{consumer}" of a liveness key found under
// prefix, without its token, for messages.
func liveName(key, prefix string) string {
	name := strings.TrimPrefix(key, prefix)
	if i := strings.LastIndexByte(name, '/'); i > 0 {
		name = name[:i]
	}
	return name
}
