package idempotency

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MemoryStore keeps keys in this process. It deduplicates redeliveries
// within one process only: use a shared store (Redis, Postgres) when several
// processes share a consumer group.
type MemoryStore struct {
	mu     sync.Mutex
	keys   memoryKeys
	now    func() time.Time // nil: the real clock, read as the monotonic time since base
	base   time.Time        // expiries are kept as offsets from base (set at first use)
	based  bool
	ops    int
	seq    uint64 // lease tokens: unique within the store
	closed bool
}

// memoryEntry is a key's state. Its token is the lease's sequence number
// (Lease.Token is its base-36 form) and its expiry an offset from the
// store's base time: no pointers, so a large store costs the collector
// nothing to scan.
type memoryEntry struct {
	token   uint64
	expires time.Duration
	done    bool
}

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{}
}

// clockLocked returns the offset of the current time from base.
func (s *MemoryStore) clockLocked() time.Duration {
	if s.now != nil {
		now := s.now()
		if !s.based {
			s.base, s.based = now, true
		}
		return now.Sub(s.base)
	}
	if !s.based {
		s.base, s.based = time.Now(), true
	}
	return time.Since(s.base) // reads only the monotonic clock
}

// Begin implements Store.
func (s *MemoryStore) Begin(_ context.Context, key string, leaseFor time.Duration) (State, Lease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := s.clockLocked()
	s.sweepLocked(at)
	k := s.keys.locate(key)
	if e, ok := s.keys.get(k); ok && at < e.expires {
		l := Lease{Key: key, Expires: s.base.Add(e.expires)}
		if e.done {
			return Done, l, nil
		}
		return Held, l, nil
	}
	s.seq++
	s.keys.set(k, memoryEntry{token: s.seq, expires: at + leaseFor})
	return Fresh, Lease{Key: key, Token: strconv.FormatUint(s.seq, 36), Expires: s.base.Add(at + leaseFor)}, nil
}

// KeyDone implements DoneReader.
func (s *MemoryStore) KeyDone(_ context.Context, key string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := s.clockLocked()
	e, ok := s.keys.get(s.keys.locate(key))
	return ok && e.done && at < e.expires, nil
}

// Commit implements Store.
func (s *MemoryStore) Commit(_ context.Context, l Lease, retention time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := s.clockLocked()
	token, valid := parseToken(l.Token)
	k := s.keys.locate(l.Key)
	e, ok := s.keys.get(k)
	ours := ok && valid && e.token == token
	// The key is ours while it holds our live-or-expired lease, or while
	// nobody holds it; it is lost once done or claimed by another holder.
	if ok && (e.done || !ours) && at < e.expires {
		return ErrLeaseLost
	}
	if ok && e.done && ours {
		return ErrLeaseLost
	}
	s.keys.set(k, memoryEntry{token: token, done: true, expires: at + retention})
	return nil
}

// Extend implements LeaseExtender.
func (s *MemoryStore) Extend(_ context.Context, l Lease, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := s.clockLocked()
	token, valid := parseToken(l.Token)
	k := s.keys.locate(l.Key)
	e, ok := s.keys.get(k)
	if !ok || !valid || e.token != token || e.done {
		return ErrLeaseLost
	}
	e.expires = at + d
	s.keys.set(k, e)
	return nil
}

// Abort implements Store.
func (s *MemoryStore) Abort(_ context.Context, l Lease) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	token, valid := parseToken(l.Token)
	k := s.keys.locate(l.Key)
	if e, ok := s.keys.get(k); ok && valid && e.token == token && !e.done {
		s.keys.del(k)
	}
	return nil
}

// Len returns the number of keys held (leased or done, not yet expired or swept).
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys.len()
}

// Close implements Store.
func (s *MemoryStore) Close() error { return nil }

// sweepLocked drops expired keys now and then, so that memory stays bounded
// by the number of events in one retention window.
func (s *MemoryStore) sweepLocked(at time.Duration) {
	s.ops++
	if s.ops < 4096 || s.ops < s.keys.len()/4 {
		return
	}
	s.ops = 0
	s.keys.sweep(at)
}

// parseToken reads a token made by Begin; a token it did not make matches nothing.
func parseToken(t string) (uint64, bool) {
	n, err := strconv.ParseUint(t, 36, 64)
	return n, err == nil && n > 0
}

// memoryKeys indexes entries by key. A key "{prefix}:{UUID}" with the UUID
// in canonical lower-case form (every key the middleware makes for a UUID
// event ID) is kept as 16 bytes in a map of its prefix: such a map hashes,
// compares and grows without reading key strings scattered over the heap,
// and holds no pointers. Every other key is kept as it is. The two forms
// never meet: a string has at most one of them.
type memoryKeys struct {
	byPrefix map[string]map[[16]byte]memoryEntry
	other    map[string]memoryEntry
	n        int
}

// memoryKey is a located key: in a prefix map (ids != nil) or not.
type memoryKey struct {
	raw    string
	prefix string
	id     [16]byte
	ids    map[[16]byte]memoryEntry
	uuid   bool
}

func (m *memoryKeys) locate(key string) memoryKey {
	i := strings.LastIndexByte(key, ':')
	if i < 0 {
		return memoryKey{raw: key}
	}
	id, ok := parseUUID(key[i+1:])
	if !ok {
		return memoryKey{raw: key}
	}
	return memoryKey{raw: key, prefix: key[:i], id: id, ids: m.byPrefix[key[:i]], uuid: true}
}

func (m *memoryKeys) get(k memoryKey) (memoryEntry, bool) {
	if k.uuid {
		e, ok := k.ids[k.id]
		return e, ok
	}
	e, ok := m.other[k.raw]
	return e, ok
}

func (m *memoryKeys) set(k memoryKey, e memoryEntry) {
	if k.uuid {
		ids := k.ids
		if ids == nil {
			if m.byPrefix == nil {
				m.byPrefix = map[string]map[[16]byte]memoryEntry{}
			}
			ids = map[[16]byte]memoryEntry{}
			m.byPrefix[strings.Clone(k.prefix)] = ids
		}
		n := len(ids)
		ids[k.id] = e
		m.n += len(ids) - n
		return
	}
	if m.other == nil {
		m.other = map[string]memoryEntry{}
	}
	n := len(m.other)
	m.other[k.raw] = e
	m.n += len(m.other) - n
}

func (m *memoryKeys) del(k memoryKey) {
	if k.uuid {
		n := len(k.ids)
		delete(k.ids, k.id)
		m.n -= n - len(k.ids)
		return
	}
	n := len(m.other)
	delete(m.other, k.raw)
	m.n -= n - len(m.other)
}

func (m *memoryKeys) len() int { return m.n }

// sweep drops the entries expired at offset at.
func (m *memoryKeys) sweep(at time.Duration) {
	for prefix, ids := range m.byPrefix {
		for id, e := range ids {
			if at >= e.expires {
				delete(ids, id)
				m.n--
			}
		}
		if len(ids) == 0 {
			delete(m.byPrefix, prefix)
		}
	}
	for k, e := range m.other {
		if at >= e.expires {
			delete(m.other, k)
			m.n--
		}
	}
}

// parseUUID reads a UUID written in canonical lower-case form,
// xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx; any other form is not read, so that
// each 16 bytes stand for exactly one string.
func parseUUID(s string) ([16]byte, bool) {
	var id [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return id, false
	}
	var bad byte
	for j, i := range uuidHexAt {
		hi, lo := lowerHex[s[i]], lowerHex[s[i+1]]
		bad |= hi | lo
		id[j] = hi<<4 | lo&0x0f
	}
	return id, bad&0xf0 == 0
}

// uuidHexAt is where each byte's two hex digits start in a canonical UUID.
var uuidHexAt = [16]int{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34}

// lowerHex maps '0'-'9' and 'a'-'f' to their value and every other byte to 0xff.
var lowerHex = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := byte('0'); c <= '9'; c++ {
		t[c] = c - '0'
	}
	for c := byte('a'); c <= 'f'; c++ {
		t[c] = c - 'a' + 10
	}
	return t
}()
