package idempotency

import (
	"context"
	"strconv"
	"sync"
	"time"
)

// MemoryStore keeps keys in this process. It deduplicates redeliveries
// within one process only: use a shared store (Redis, Postgres) when several
// processes share a consumer group.
type MemoryStore struct {
	mu     sync.Mutex
	keys   map[string]memoryEntry
	now    func() time.Time
	ops    int
	seq    uint64 // lease tokens: unique within the store
	closed bool
}

type memoryEntry struct {
	token   string
	done    bool
	expires time.Time
}

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{keys: map[string]memoryEntry{}, now: time.Now}
}

// Begin implements Store.
func (s *MemoryStore) Begin(_ context.Context, key string, leaseFor time.Duration) (State, Lease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.sweepLocked(now)
	if e, ok := s.keys[key]; ok && now.Before(e.expires) {
		if e.done {
			return Done, Lease{Key: key, Expires: e.expires}, nil
		}
		return Held, Lease{Key: key, Expires: e.expires}, nil
	}
	s.seq++
	l := Lease{Key: key, Token: strconv.FormatUint(s.seq, 36), Expires: now.Add(leaseFor)}
	s.keys[key] = memoryEntry{token: l.Token, expires: l.Expires}
	return Fresh, l, nil
}

// Commit implements Store.
func (s *MemoryStore) Commit(_ context.Context, l Lease, retention time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	e, ok := s.keys[l.Key]
	// The key is ours while it holds our live-or-expired lease, or while
	// nobody holds it; it is lost once done or claimed by another holder.
	if ok && (e.done || e.token != l.Token) && now.Before(e.expires) {
		return ErrLeaseLost
	}
	if ok && e.done && e.token == l.Token {
		return ErrLeaseLost
	}
	s.keys[l.Key] = memoryEntry{token: l.Token, done: true, expires: now.Add(retention)}
	return nil
}

// Abort implements Store.
func (s *MemoryStore) Abort(_ context.Context, l Lease) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.keys[l.Key]; ok && e.token == l.Token && !e.done {
		delete(s.keys, l.Key)
	}
	return nil
}

// Len returns the number of keys held (leased or done, not yet expired or swept).
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.keys)
}

// Close implements Store.
func (s *MemoryStore) Close() error { return nil }

// sweepLocked drops expired keys now and then, so that memory stays bounded
// by the number of events in one retention window.
func (s *MemoryStore) sweepLocked(now time.Time) {
	s.ops++
	if s.ops < 4096 || s.ops < len(s.keys)/4 {
		return
	}
	s.ops = 0
	for k, e := range s.keys {
		if !now.Before(e.expires) {
			delete(s.keys, k)
		}
	}
}
