package redisstore

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/idempotency"
)

func init() {
	idempotency.Register("redis", Open)
	idempotency.Register("rediss", Open)
}

// Open opens a store from a redis:// or rediss:// URL, the way
// idempotency.Open does for those schemes:
//
//	redis://[:password@]host:port[/db][?prefix=busline:dedup:]
//	rediss://...                      TLS
//	redis://host:port?cluster=true&addr=host2:port   Redis Cluster
//
// prefix is the key prefix (default DefaultPrefix); cluster=true (or extra
// addr= parameters) opens a Cluster client; every other query parameter is
// a go-redis option (pool_size, dial_timeout, ...). Open pings the server.
// The store owns the client and closes it on Close.
func Open(ctx context.Context, u *url.URL, _ *slog.Logger) (idempotency.Store, error) {
	q := u.Query()
	opts := Options{Prefix: q.Get("prefix")}
	if _, ok := q["prefix"]; ok && opts.Prefix == "" {
		return nil, fmt.Errorf("redisstore: prefix= must not be empty")
	}
	cluster := false
	if v, ok := q["cluster"]; ok {
		b, err := strconv.ParseBool(v[len(v)-1])
		if err != nil {
			return nil, fmt.Errorf("redisstore: cluster=%q: %w", v[len(v)-1], err)
		}
		cluster = b
	}
	q.Del("prefix")
	q.Del("cluster")
	if len(q["addr"]) > 0 {
		cluster = true
	}
	rest := *u
	rest.RawQuery = q.Encode()
	var client redis.UniversalClient
	if cluster {
		o, err := redis.ParseClusterURL(rest.String())
		if err != nil {
			return nil, fmt.Errorf("redisstore: %w", err)
		}
		client = redis.NewClusterClient(o)
	} else {
		o, err := redis.ParseURL(rest.String())
		if err != nil {
			return nil, fmt.Errorf("redisstore: %w", err)
		}
		client = redis.NewClient(o)
	}
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("redisstore: ping: %w", err)
	}
	s := New(client, opts)
	s.ownClient = true
	return s, nil
}
