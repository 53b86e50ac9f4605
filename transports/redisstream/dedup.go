package redisstream

import (
	"context"

	"github.com/busline/busline/idempotency"
	"github.com/busline/busline/idempotency/redisstore"
)

// IdempotencyStore returns the Redis idempotency store on the transport's
// own client, with the keys "{prefix}dedup:{group}:{event ID}" (the same
// store at every call). The bus uses it when Config.Idempotency is empty,
// so that with a redis:// transport duplicates are dropped across every
// process, not only within one. The store shares the client and does not
// close it: the transport does.
//
// The transport's subscriptions send their XACKs through the store's
// pipelines (redisstore.Store.Pipelined), after the commits the
// middleware deferred, so the store defers commits
// (redisstore.Options.DeferCommits): a handler's slot takes its next
// event without waiting for the commit's round trip, and no event is
// acknowledged before its commit is applied. Use the store only with this
// transport's subscriptions.
func (t *Transport) IdempotencyStore(context.Context) (idempotency.Store, error) {
	t.dedupOnce.Do(func() {
		t.dedup.Store(redisstore.New(t.client, redisstore.Options{Prefix: t.dedupPrefix(), DeferCommits: true}))
	})
	return t.dedup.Load(), nil
}

// dedupPrefix starts the keys of the transport's own dedup store.
func (t *Transport) dedupPrefix() string { return t.opts.Prefix + "dedup:" }
