package redisstream

import (
	"context"

	"github.com/busline/busline/idempotency"
	"github.com/busline/busline/idempotency/redisstore"
)

// IdempotencyStore returns a Redis idempotency store on the transport's
// own client, with the keys "{prefix}dedup:{group}:{event ID}". The bus
// uses it when Config.Idempotency is empty, so that with a redis://
// transport duplicates are dropped across every process, not only within
// one. The store shares the client and does not close it: the transport
// does.
func (t *Transport) IdempotencyStore(context.Context) (idempotency.Store, error) {
	return redisstore.New(t.client, redisstore.Options{Prefix: t.opts.Prefix + "dedup:"}), nil
}
