package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/idempotency"
)

// DefaultPrefix starts every key the store writes.
const DefaultPrefix = "busline:dedup:"

// Options configure a Store.
type Options struct {
	// Prefix starts every key: "{Prefix}{group}:{event ID}". Default
	// DefaultPrefix. URL: prefix.
	Prefix string
}

// Store is the Redis idempotency store. It is safe for concurrent use by
// many goroutines and processes.
type Store struct {
	client    redis.UniversalClient
	prefix    string
	ownClient bool
	legacy    atomic.Bool // the server rejected SET NX GET: use beginScript
}

var (
	_ idempotency.Store = (*Store)(nil)
)

// New returns a store on client. Close does not close a client passed here.
func New(client redis.UniversalClient, opts Options) *Store {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	return &Store{client: client, prefix: opts.Prefix}
}

// Prefix returns the key prefix.
func (s *Store) Prefix() string { return s.prefix }

// RedisKey returns the Redis key holding key.
func (s *Store) RedisKey(key string) string { return s.prefix + key }

// Begin implements idempotency.Store in one round trip.
func (s *Store) Begin(ctx context.Context, key string, leaseFor time.Duration) (idempotency.State, idempotency.Lease, error) {
	if leaseFor < time.Millisecond {
		leaseFor = time.Millisecond
	}
	rkey := s.RedisKey(key)
	token := newToken()
	for range 3 {
		start := time.Now()
		old, found, ttl, err := s.setNX(ctx, rkey, token, leaseFor)
		if err != nil {
			return 0, idempotency.Lease{}, fmt.Errorf("redisstore: begin %s: %w", key, err)
		}
		if !found {
			return idempotency.Fresh, idempotency.Lease{Key: key, Token: token, Expires: start.Add(leaseFor)}, nil
		}
		if ttl < 0 {
			// The key expired between SET and PTTL, or has no expiry
			// (written by someone else): try again.
			continue
		}
		l := idempotency.Lease{Key: key, Expires: start.Add(ttl)}
		if old == doneMarker {
			return idempotency.Done, l, nil
		}
		return idempotency.Held, l, nil
	}
	return idempotency.Held, idempotency.Lease{Key: key, Expires: time.Now().Add(100 * time.Millisecond)}, nil
}

// setNX sets rkey to token for lease unless it exists; found reports that
// it existed, with its value and remaining time to live.
func (s *Store) setNX(ctx context.Context, rkey, token string, lease time.Duration) (old string, found bool, ttl time.Duration, err error) {
	ms := lease.Milliseconds()
	if !s.legacy.Load() {
		pipe := s.client.Pipeline()
		set := pipe.Do(ctx, "SET", rkey, token, "NX", "PX", ms, "GET")
		pttl := pipe.PTTL(ctx, rkey)
		_, _ = pipe.Exec(ctx) // errors are read from each command
		switch serr := set.Err(); {
		case serr == nil:
			old, err = set.Text()
			if err != nil {
				return "", false, 0, err
			}
			return old, true, pttlOf(pttl), nil
		case errors.Is(serr, redis.Nil):
			return "", false, 0, nil
		case isSyntaxError(serr):
			s.legacy.Store(true) // Redis < 7.0: fall through to the script
		default:
			return "", false, 0, serr
		}
	}
	res, err := beginScript.Run(ctx, s.client, []string{rkey}, token, ms).Slice()
	if err != nil {
		return "", false, 0, err
	}
	if len(res) != 2 {
		return "", false, 0, fmt.Errorf("unexpected begin script reply %v", res)
	}
	if res[0] == nil {
		return "", false, 0, nil
	}
	old, _ = res[0].(string)
	n, _ := res[1].(int64)
	return old, true, millis(n), nil
}

func pttlOf(c *redis.DurationCmd) time.Duration {
	d, err := c.Result()
	if err != nil {
		return -1
	}
	return d // go-redis returns -1 / -2 unscaled for "no expiry" / "no key"
}

func millis(n int64) time.Duration {
	if n < 0 {
		return -1
	}
	return time.Duration(n) * time.Millisecond
}

func isSyntaxError(err error) bool {
	return err != nil && strings.Contains(strings.ToLower(err.Error()), "syntax error")
}

// Commit implements idempotency.Store in one round trip (a token-checked
// script).
func (s *Store) Commit(ctx context.Context, l idempotency.Lease, retention time.Duration) error {
	if retention < time.Millisecond {
		retention = time.Millisecond
	}
	n, err := commitScript.Run(ctx, s.client, []string{s.RedisKey(l.Key)}, l.Token, retention.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("redisstore: commit %s: %w", l.Key, err)
	}
	if n != 1 {
		return fmt.Errorf("redisstore: commit %s: %w", l.Key, idempotency.ErrLeaseLost)
	}
	return nil
}

// Abort implements idempotency.Store in one round trip (a token-checked
// script): a lease that was taken over is left to its new holder.
func (s *Store) Abort(ctx context.Context, l idempotency.Lease) error {
	if err := abortScript.Run(ctx, s.client, []string{s.RedisKey(l.Key)}, l.Token).Err(); err != nil {
		return fmt.Errorf("redisstore: abort %s: %w", l.Key, err)
	}
	return nil
}

// Close closes the Redis client when the store opened it from a URL.
func (s *Store) Close() error {
	if !s.ownClient {
		return nil
	}
	return s.client.Close()
}

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
