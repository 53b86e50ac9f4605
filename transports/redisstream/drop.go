package redisstream

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/transports"
)

var _ transports.ConnectionDropper = (*Transport)(nil)

// DropConnections implements transports.ConnectionDropper: it closes the
// subscriptions' reading connections and, when the transport opened it,
// the shared client, so that every command still waiting for Redis fails
// at once (a go-redis client otherwise waits out its read_timeout on each
// step of Close). A client passed to New is left open: its commands end
// by its own timeouts, and DropConnections reports false (a transport on
// such a client opens no connection of its own).
func (t *Transport) DropConnections() bool {
	if !t.ownClient {
		return false
	}
	t.log.Warn("redisstream: dropping the connections to Redis")
	t.readers.drop()
	if !t.clientClosed.Swap(true) {
		_ = t.client.Close()
	}
	return true
}

// readerSet holds the reading clients the subscriptions opened, so that
// DropConnections can close them. Its dropped flag is the transport's:
// set by DropConnections, after which the subscriptions' calls fail with
// transports.ErrClosed.
type readerSet struct {
	mu      sync.Mutex
	open    map[redis.UniversalClient]struct{}
	dropped atomic.Bool // written under mu
}

// add registers c; false when the connections were dropped (c is then
// closed).
func (r *readerSet) add(c redis.UniversalClient) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dropped.Load() {
		_ = c.Close()
		return false
	}
	if r.open == nil {
		r.open = map[redis.UniversalClient]struct{}{}
	}
	r.open[c] = struct{}{}
	return true
}

// close closes c and forgets it; a client DropConnections closed before
// is no error.
func (r *readerSet) close(c redis.UniversalClient) error {
	r.mu.Lock()
	dropped := r.dropped.Load()
	delete(r.open, c)
	r.mu.Unlock()
	if err := c.Close(); err != nil && !(dropped && errors.Is(err, redis.ErrClosed)) {
		return err
	}
	return nil
}

// drop closes every reading client, now and as they are added.
func (r *readerSet) drop() {
	r.mu.Lock()
	r.dropped.Store(true)
	open := r.open
	r.open = nil
	r.mu.Unlock()
	for c := range open {
		_ = c.Close()
	}
}
