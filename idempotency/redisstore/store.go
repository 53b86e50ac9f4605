package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
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
	// Prefix starts every key: "{Prefix}{group}:{event ID}", and the bus's
	// process-name leases, "{Prefix}busline.process:{group}/{process}". Default
	// DefaultPrefix. URL: prefix.
	Prefix string
	// DeferCommits lets the idempotency middleware queue a commit and go
	// on without waiting for its reply (idempotency.DeferredCommitter), so
	// that a handler slot is free one round trip sooner. Set it only when
	// every acknowledgement of the events the store guards is sent through
	// Pipelined, which sends it once the commits deferred before it are
	// applied: the Redis transport's own store (its IdempotencyStore) does.
	DeferCommits bool
}

// Store is the Redis idempotency store. It is safe for concurrent use by
// many goroutines and processes.
type Store struct {
	client    redis.UniversalClient
	prefix    string
	ownClient bool
	// clientClosed is set by the first of Close and DropConnections.
	clientClosed atomic.Bool
	legacy       atomic.Bool // the server rejected SET NX GET: use beginScript
	pipe         *pipeliner
	deferring    bool // Options.DeferCommits
	ahead        ahead

	tokenPrefix [8]byte
	tokens      atomic.Uint64

	// stray holds the tokens of leases this store may have written and
	// nobody will finish: a Begin that failed (its SET may have been
	// applied and only the reply lost), a Commit or an Abort that failed.
	stray stray
}

var (
	_ idempotency.Store             = (*Store)(nil)
	_ idempotency.DeferredCommitter = (*Store)(nil)
)

// New returns a store on client. Close does not close a client passed here.
func New(client redis.UniversalClient, opts Options) *Store {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	s := &Store{client: client, prefix: opts.Prefix, deferring: opts.DeferCommits}
	_, _ = rand.Read(s.tokenPrefix[:])
	_, cluster := client.(*redis.ClusterClient)
	s.pipe = &pipeliner{client: client, legacy: s.legacy.Load, cluster: cluster}
	return s
}

// Prefix returns the key prefix.
func (s *Store) Prefix() string { return s.prefix }

// RedisKey returns the Redis key holding key.
func (s *Store) RedisKey(key string) string { return s.prefix + key }

// Begin implements idempotency.Store in one round trip (shared with the
// other calls in flight): SET key token NX PX lease GET. Only a key that
// exists (a duplicate) costs a second round trip, to read its value and
// expiry together.
//
// A reply lost on the way back does not leave the key held: a SET that
// go-redis sent again finds the caller's own token and Begin returns Fresh,
// and a lease whose Begin, Commit or Abort failed in this store (its
// outcome unknown, no handler working under it) is taken over by the next
// Begin of the key in this store at once, rather than after the lease
// expires. Another store (another process) still finds it Held.
func (s *Store) Begin(ctx context.Context, key string, leaseFor time.Duration) (_ idempotency.State, _ idempotency.Lease, err error) {
	if leaseFor < time.Millisecond {
		leaseFor = time.Millisecond
	}
	s.stray.lease(leaseFor)
	rkey := s.RedisKey(key)
	if c, ok := s.adopt(rkey); ok {
		// The transport's read of the event claimed the key for us.
		return idempotency.Fresh, idempotency.Lease{Key: key, Token: c.token, Expires: c.expires}, nil
	}
	token := idempotency.HolderToken(holderOf(ctx), s.newToken())
	defer func() {
		if err != nil {
			// The SET (or the take-over) may have been applied with
			// its reply lost: nobody will finish that lease.
			s.stray.add(token)
		}
	}()
	for range 3 {
		start := time.Now()
		old, found, err := s.setNX(ctx, rkey, token, leaseFor)
		if err != nil {
			return 0, idempotency.Lease{}, fmt.Errorf("redisstore: begin %s: %w", key, err)
		}
		if !found || old == token {
			// Set now, or by an earlier send of this SET whose reply was
			// lost (go-redis sent it again).
			return idempotency.Fresh, idempotency.Lease{Key: key, Token: token, Expires: start.Add(leaseFor)}, nil
		}
		// Read the value and its expiry together (MULTI): the holder may
		// have committed or aborted since the SET.
		var get *redis.StringCmd
		var pttl *redis.DurationCmd
		if _, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
			get, pttl = p.Get(ctx, rkey), p.PTTL(ctx, rkey)
			return nil
		}); err != nil && !errors.Is(err, redis.Nil) {
			return 0, idempotency.Lease{}, fmt.Errorf("redisstore: begin %s: %w", key, err)
		}
		val, ttl := get.Val(), pttl.Val()
		if get.Err() != nil || ttl < 0 {
			// The key is gone (claim it again), or has no expiry
			// (written by someone else).
			continue
		}
		l := idempotency.Lease{Key: key, Expires: start.Add(ttl)}
		if val == doneMarker {
			return idempotency.Done, l, nil
		}
		if s.stray.has(val) || idempotency.EarlierRun(ctx, val) {
			// A lease of this store that nobody will finish, or of our own
			// process name in an earlier run, which died holding it. Take
			// it over now rather than after it expires.
			took, err := takeOver.Run(ctx, s.client, []string{rkey}, val, token, leaseFor.Milliseconds()).Int()
			if err != nil {
				return 0, idempotency.Lease{}, fmt.Errorf("redisstore: take over %s: %w", key, err)
			}
			if took == 1 {
				s.stray.remove(val)
				return idempotency.Fresh, idempotency.Lease{Key: key, Token: token, Expires: start.Add(leaseFor)}, nil
			}
			continue // changed meanwhile: look again
		}
		return idempotency.Held, l, nil
	}
	return idempotency.Held, idempotency.Lease{Key: key, Expires: time.Now().Add(100 * time.Millisecond)}, nil
}

// KeyDone implements idempotency.DoneReader with one GET.
func (s *Store) KeyDone(ctx context.Context, key string) (bool, error) {
	v, err := s.client.Get(ctx, s.RedisKey(key)).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("redisstore: read %s: %w", key, err)
	}
	return v == doneMarker, nil
}

// setNX sets rkey to token for lease unless it exists; found reports that
// it existed, with its value.
func (s *Store) setNX(ctx context.Context, rkey, token string, lease time.Duration) (old string, found bool, err error) {
	if err := ctx.Err(); err != nil {
		return "", false, err
	}
	o := &op{kind: opBegin, key: rkey, token: token, ms: lease.Milliseconds()}
	s.pipe.do(o)
	if isSyntaxError(o.cmd.Err()) && !s.legacy.Load() {
		s.legacy.Store(true) // Redis < 7.0: SET has no NX with GET
		o = &op{kind: opBegin, key: rkey, token: token, ms: lease.Milliseconds()}
		s.pipe.do(o)
	}
	if s.legacy.Load() {
		res, err := o.cmd.Slice()
		if err != nil {
			return "", false, err
		}
		if len(res) != 2 {
			return "", false, fmt.Errorf("unexpected begin script reply %v", res)
		}
		if res[0] == nil {
			return "", false, nil
		}
		old, _ = res[0].(string)
		return old, true, nil
	}
	old, err = o.cmd.Text()
	switch {
	case errors.Is(err, redis.Nil):
		return "", false, nil
	case err != nil:
		return "", false, err
	}
	return old, true, nil
}

func isSyntaxError(err error) bool {
	return err != nil && strings.Contains(strings.ToLower(err.Error()), "syntax error")
}

// Commit implements idempotency.Store in one round trip (a token-checked
// script, pipelined with the other calls in flight).
func (s *Store) Commit(ctx context.Context, l idempotency.Lease, retention time.Duration) error {
	if retention < time.Millisecond {
		retention = time.Millisecond
	}
	if err := ctx.Err(); err != nil {
		s.stray.add(l.Token) // nobody finishes the lease now
		return fmt.Errorf("redisstore: commit %s: %w", l.Key, err)
	}
	o := &op{kind: opCommit, key: s.RedisKey(l.Key), token: l.Token, ms: retention.Milliseconds()}
	s.pipe.do(o)
	n, err := o.cmd.Int()
	if err != nil {
		// Unknown whether the key was marked done: if it still holds our
		// lease, the redelivery in this store takes it over at once.
		s.stray.add(l.Token)
		return fmt.Errorf("redisstore: commit %s: %w", l.Key, err)
	}
	if n != 1 {
		return fmt.Errorf("redisstore: commit %s: %w", l.Key, idempotency.ErrLeaseLost)
	}
	return nil
}

// CommitDeferred implements idempotency.DeferredCommitter when the store
// was made with Options.DeferCommits (otherwise it reports false): it
// queues the commit for the store's next pipeline and returns; done gets
// Commit's result once the commit is applied. A commit that fails is sent
// again, ahead of the next Pipelined call, and the Pipelined calls made
// after it fail until it is applied: an acknowledgement sent through
// Pipelined never reaches Redis before the commits deferred before it.
func (s *Store) CommitDeferred(l idempotency.Lease, retention time.Duration, done func(error)) bool {
	if !s.deferring {
		return false
	}
	o := &op{kind: opCommit, key: s.RedisKey(l.Key), token: l.Token, ms: max(retention, time.Millisecond).Milliseconds()}
	o.settled = func(o *op) {
		if n, err := o.cmd.Int(); err != nil {
			done(fmt.Errorf("redisstore: commit %s: %w", l.Key, err))
		} else if n != 1 {
			done(fmt.Errorf("redisstore: commit %s: %w", l.Key, idempotency.ErrLeaseLost))
		} else {
			done(nil)
		}
	}
	s.pipe.deferOp(o)
	return true
}

// Pipelined sends the commands fn queues on the pipeline in one of the
// store's pipelines, once every commit deferred before the call is applied
// (CommitDeferred), and returns the first error among them (redis.Nil is
// not one). It fails without sending them while a deferred commit that
// failed waits to be sent again; calling it again sends that commit
// first. A transport acknowledges through it so that the middleware may
// defer its commits (Options.DeferCommits).
func (s *Store) Pipelined(ctx context.Context, fn func(redis.Pipeliner)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	o := &op{kind: opFunc, fn: fn}
	s.pipe.do(o)
	return o.err
}

// Abort implements idempotency.Store in one round trip (a token-checked
// script): a lease that was taken over is left to its new holder.
func (s *Store) Abort(ctx context.Context, l idempotency.Lease) error {
	if err := ctx.Err(); err != nil {
		s.stray.add(l.Token) // nobody finishes the lease now
		return fmt.Errorf("redisstore: abort %s: %w", l.Key, err)
	}
	o := &op{kind: opAbort, key: s.RedisKey(l.Key), token: l.Token}
	s.pipe.do(o)
	if err := o.cmd.Err(); err != nil {
		// The key may still hold our lease: the retry in this store
		// takes it over at once.
		s.stray.add(l.Token)
		return fmt.Errorf("redisstore: abort %s: %w", l.Key, err)
	}
	return nil
}

// Close closes the Redis client when the store opened it from a URL.
func (s *Store) Close() error {
	if !s.ownClient || s.clientClosed.Swap(true) {
		return nil
	}
	return s.client.Close()
}

// DropConnections closes the client when the store opened it (from a
// redis:// URL), so that every command still waiting for Redis fails at
// once: the bus calls it when its Close outlasts bus.CloseBudget
// (transports.ConnectionDropper). A client passed to New is left open,
// and DropConnections reports false.
func (s *Store) DropConnections() bool {
	if !s.ownClient {
		return false
	}
	if !s.clientClosed.Swap(true) {
		_ = s.client.Close()
	}
	return true
}

// newToken returns a token no other lease holds: a random prefix drawn once
// per store, then a counter. It needs to be unique, not secret, and costs no
// system call.
func (s *Store) newToken() string {
	var b [16]byte
	copy(b[:8], s.tokenPrefix[:])
	binary.BigEndian.PutUint64(b[8:], s.tokens.Add(1))
	return hex.EncodeToString(b[:])
}

func holderOf(ctx context.Context) idempotency.Holder {
	h, _ := idempotency.HolderFrom(ctx)
	return h
}

// takeOver replaces the lease token ARGV[1] by ARGV[2] for ARGV[3] ms, only
// if the key still holds ARGV[1].
var takeOver = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0`)

// Extend implements idempotency.LeaseExtender: the lease's expiry moves to
// now+d while the key still holds its token.
func (s *Store) Extend(ctx context.Context, l idempotency.Lease, d time.Duration) error {
	s.stray.lease(d)
	n, err := extendLease.Run(ctx, s.client, []string{s.RedisKey(l.Key)}, l.Token, max(d.Milliseconds(), 1)).Int()
	if err != nil {
		return fmt.Errorf("redisstore: extend %s: %w", l.Key, err)
	}
	if n != 1 {
		return idempotency.ErrLeaseLost
	}
	return nil
}

var extendLease = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`)
