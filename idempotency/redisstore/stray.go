package redisstore

import (
	"sync"
	"sync/atomic"
	"time"
)

// stray remembers the tokens of leases this store may hold in Redis that
// no caller will finish: the token of a Begin that returned an error (the
// SET may have been applied and only its reply lost), and of a lease whose
// Commit or Abort returned an error. Such a lease would otherwise block its
// key, in this process too, until it expires (AckTimeout); Begin takes it
// over instead, the way it takes over a lease of an earlier run. A token is
// unique to one lease, so a remembered token found in a key is always that
// abandoned lease, never a live one. The set stays small: it only grows
// on errors, and a token is forgotten once taken over or once its lease
// has certainly expired.
type stray struct {
	longest atomic.Int64 // the longest lease or extension asked for, ns

	mu      sync.Mutex
	tokens  map[string]time.Time // token -> when its lease has surely expired
	sweepAt int                  // sweep expired tokens when the set reaches this size
}

// lease records a lease length asked of the store: no lease it wrote
// outlives the longest one past the call that wrote it.
func (s *stray) lease(d time.Duration) {
	for {
		cur := s.longest.Load()
		if int64(d) <= cur || s.longest.CompareAndSwap(cur, int64(d)) {
			return
		}
	}
}

// add remembers token until the longest lease has passed.
func (s *stray) add(token string) {
	now := time.Now()
	until := now.Add(time.Duration(s.longest.Load()))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tokens == nil {
		s.tokens = map[string]time.Time{}
	}
	s.tokens[token] = until
	if len(s.tokens) < s.sweepAt {
		return
	}
	for t, u := range s.tokens {
		if now.After(u) {
			delete(s.tokens, t)
		}
	}
	s.sweepAt = max(64, 2*len(s.tokens))
}

// has reports whether token is a remembered stray lease.
func (s *stray) has(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.tokens[token]
	return ok
}

// remove forgets token (its lease was taken over).
func (s *stray) remove(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tokens, token)
}
