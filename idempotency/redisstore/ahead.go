package redisstore

import (
	"context"
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
// of an event is KeyPrefix followed by its ID, claimed for Lease with one
// of Tokens. Every claim written must be reported: Claimed when it was
// set (Begin then adopts it, or Release gives it up), Unknown when the
// read's reply was lost.
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

// Tokens returns n new lease tokens, one for each entry a read may claim.
func (p AheadPlan) Tokens(n int) []string {
	p.s.stray.lease(p.Lease)
	out := make([]string, n)
	for i := range out {
		out[i] = idempotency.HolderToken(p.holder, p.s.newToken())
	}
	return out
}

// Claimed records that the read which started at start set the key of
// eventID to token: the next Begin of that key returns Fresh with this
// lease, without a round trip. It returns the Redis key for Release.
func (p AheadPlan) Claimed(eventID, token string, start time.Time) string {
	rkey := p.KeyPrefix + eventID
	p.s.ahead.any.Store(true)
	p.s.ahead.claims.Store(rkey, aheadClaim{token: token, expires: start.Add(p.Lease), lease: p.Lease})
	return rkey
}

// Unknown records that a read's reply was lost: any of tokens may hold a
// key that nobody will finish. Begin in this store takes such a lease
// over at once, as it does a lost Begin's.
func (p AheadPlan) Unknown(tokens []string) {
	for _, t := range tokens {
		p.s.stray.add(t)
	}
}

// Release gives up the claim taken ahead on rkey with token when no Begin
// adopted it: its event was settled without reaching the middleware (a
// poison entry, a give-back). The key is deleted if it still holds token.
// When that fails the claim stays recorded, so that the caller can retry
// the release (and settle the entry only then).
func (s *Store) Release(ctx context.Context, rkey, token string) error {
	v, ok := s.ahead.claims.Load(rkey)
	if !ok || v.(aheadClaim).token != token || !s.ahead.claims.CompareAndDelete(rkey, v) {
		return nil // adopted by a Begin, or replaced by a later read's claim
	}
	if err := s.Abort(ctx, idempotency.Lease{Key: rkey[len(s.prefix):], Token: token}); err != nil {
		s.ahead.claims.LoadOrStore(rkey, v)
		return err
	}
	return nil
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
