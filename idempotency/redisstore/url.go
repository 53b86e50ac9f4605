package redisstore

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"

	"github.com/busline/busline/idempotency"
	"github.com/busline/busline/internal/redisurl"
	"github.com/busline/busline/transports"
)

func init() {
	idempotency.Register("redis", Open)
	idempotency.Register("rediss", Open)
}

// Open opens a store from a redis:// or rediss:// URL, the way
// idempotency.Open does for those schemes. It accepts the URLs the Redis
// transport accepts (one parser, internal/redisurl):
//
//	redis://[:password@]host:port[/db][?prefix=busline:dedup:]
//	rediss://...                                      TLS
//	redis://host:port?cluster=true&addr=host2:port    Redis Cluster
//	redis://sentinel:26379?master_name=m&addr=s2:26379&sentinel_password=...   Sentinel
//
// prefix is the key prefix (default DefaultPrefix); every other query
// parameter is a go-redis option (pool_size, dial_timeout, ...). Open
// pings the server. The store owns the client and closes it on Close.
func Open(ctx context.Context, u *url.URL, _ *slog.Logger) (idempotency.Store, error) {
	q := u.Query()
	opts := Options{Prefix: q.Get("prefix")}
	if _, ok := q["prefix"]; ok && opts.Prefix == "" {
		return nil, fmt.Errorf("%w: redisstore: prefix= must not be empty", transports.ErrInvalidURL)
	}
	q.Del("prefix")
	rest := *u
	rest.RawQuery = q.Encode()
	rc, err := redisurl.Parse(&rest)
	if err != nil {
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	client := rc.NewClient()
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("redisstore: ping: %w", redisurl.MarkRefused(err))
	}
	s := New(client, opts)
	s.ownClient = true
	return s, nil
}
