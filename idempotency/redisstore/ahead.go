package redisstore

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/busline/busline/idempotency"
)

var _ idempotency.AheadClaimer = (*Store)(nil)

// ahead holds what the store knows of claims taken ahead of Begin: the
// groups whose middleware announced its Begin calls, and the claims a
// transport took in its reads that no Begin has adopted yet.
type ahead struct {
	mu     sync.RWMutex
	groups map[string]AheadPlan

	any    atomic.Bool // a claim was ever taken ahead: Begin looks
	claims sync.Map    // Redis key -> aheadClaim
}

// aheadClaim is a lease a transport's read wrote for Begin to adopt.
type aheadClaim struct {
	token   string
	expires time.Time
	lease   time.Duration
}

// ExpectBegins implements idempotency.AheadClaimer: the idempotency
// middleware announces its group, holder and lease, so that the
// transport's reads may claim that group's keys (PlanAhead).
func (s *Store) ExpectBegins(group string, holder idempotency.Holder, lease time.Duration) {
	if group == "" || lease <= 0 {
		return
	}
	s.ahead.mu.Lock()
	defer s.ahead.mu.Unlock()
	if s.ahead.groups == nil {
		s.ahead.groups = map[string]AheadPlan{}
	}
	s.ahead.groups[group] = AheadPlan{s: s, KeyPrefix: s.prefix + idempotency.Key(group, ""), Lease: max(lease, time.Millisecond), holder: holder}
}

// AheadPlan says how a transport claims, in its own read, the keys of
// events the idempotency middleware of one group will Begin: the Redis key
// of an event is KeyPrefix followed by its ID, claimed for Lease with the
// token ClaimToken(base, i) for the read's i-th entry, base coming from
// TokenBase (one per read, so a read sends one token, not one per entry it
// may take). Every claim written must be reported: Claimed when it was set
// (Begin then adopts it, or Release gives it up), Unknown when the read's
// reply was lost.
type AheadPlan struct {
	s         *Store
	KeyPrefix string
	Lease     time.Duration
	holder    idempotency.Holder
}

// PlanAhead returns the plan for group's keys, or false when no
// middleware announced the group (idempotency.AheadClaimer): its events
// are not claimed ahead.
func (s *Store) PlanAhead(group string) (AheadPlan, bool) {
	s.ahead.mu.RLock()
	defer s.ahead.mu.RUnlock()
	p, ok := s.ahead.groups[group]
	return p, ok
}

// TokenBase returns the base of the lease tokens of one read: a token no
// other lease holds, which ClaimToken extends with each entry's number.
func (p AheadPlan) TokenBase() string {
	p.s.stray.lease(p.Lease)
	return idempotency.HolderToken(p.holder, p.s.newToken()) + "."
}

// ClaimToken is the lease token of the i-th entry (from 1) of the read
// whose tokens extend base: base followed by i in decimal, as a Lua
// script writes it with base .. i.
func ClaimToken(base string, i int) string {
	return base + strconv.Itoa(i)
}

// AheadClaim names a claim a transport's read took (AheadPlan.Claimed),
// for Release.
type AheadClaim struct{ RedisKey, Token string }

// Claimed records that the read which started at start set the key of
// eventID to token: the next Begin of that key returns Fresh with this
// lease, without a round trip.
func (p AheadPlan) Claimed(eventID, token string, start time.Time) AheadClaim {
	rkey := p.KeyPrefix + eventID
	p.s.ahead.any.Store(true)
	p.s.ahead.claims.Store(rkey, aheadClaim{token: token, expires: start.Add(p.Lease), lease: p.Lease})
	return AheadClaim{RedisKey: rkey, Token: token}
}

// Unknown records that a read's reply was lost: the tokens of its first
// n entries (ClaimToken(base, 1) to ClaimToken(base, n)) may hold keys
// that nobody will finish. Begin in this store takes such a lease over at
// once, as it does a lost Begin's.
func (p AheadPlan) Unknown(base string, n int) {
	for i := 1; i <= n; i++ {
		p.s.stray.add(ClaimToken(base, i))
	}
}

// Release gives up the claims taken ahead that no Begin adopted: their
// events were settled without reaching the middleware (a poison entry, a
// give-back). Each key is deleted if it still holds its claim's token;
// the aborts of several claims go in one round trip. It returns each
// claim's error (nil for one a Begin adopted or a later read replaced). A
// claim whose release failed stays recorded, so that the caller can retry
// it (and settle the entry only then).
func (s *Store) Release(ctx context.Context, claims []AheadClaim) []error {
	errs := make([]error, len(claims))
	var todo []int
	var taken []any
	for i, c := range claims {
		v, ok := s.ahead.claims.Load(c.RedisKey)
		if ok && v.(aheadClaim).token == c.Token && s.ahead.claims.CompareAndDelete(c.RedisKey, v) {
			todo = append(todo, i)
			taken = append(taken, v)
		}
	}
	abort := func(k int) {
		c := claims[todo[k]]
		err := s.Abort(ctx, idempotency.Lease{Key: c.RedisKey[len(s.prefix):], Token: c.Token})
		if err != nil {
			s.ahead.claims.LoadOrStore(c.RedisKey, taken[k])
		}
		errs[todo[k]] = err
	}
	if len(todo) == 1 {
		abort(0)
		return errs
	}
	// Side by side: the store's pipeliner sends calls made while one is on
	// the wire together.
	var wg sync.WaitGroup
	for k := range todo {
		wg.Go(func() { abort(k) })
	}
	wg.Wait()
	return errs
}

// adopt returns the claim taken ahead on rkey, if any, and forgets it. A
// claim with less than half its lease left is not adopted (a handler
// would start under a lease about to end, or ended, which another holder
// may have taken over): its token is remembered as stray, and Begin claims
// the key the usual way, taking the lease over if it is still this one.
func (s *Store) adopt(rkey string) (aheadClaim, bool) {
	if !s.ahead.any.Load() {
		return aheadClaim{}, false
	}
	v, ok := s.ahead.claims.LoadAndDelete(rkey)
	if !ok {
		return aheadClaim{}, false
	}
	c := v.(aheadClaim)
	if time.Until(c.expires) < c.lease/2 {
		s.stray.add(c.token)
		return aheadClaim{}, false
	}
	return c, true
}
