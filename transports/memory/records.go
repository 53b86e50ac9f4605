package memory

import (
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/busline/busline/transports"
)

var _ transports.RecordStore = (*Transport)(nil)

// recordBook holds a broker's records: kind → key → value. It has a lock of
// its own, so reading records never waits on the streams.
type recordBook struct {
	mu    sync.Mutex
	kinds map[string]map[string][]byte
}

func (r *recordBook) put(kind, key string, value []byte, onlyIfAbsent bool) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.kinds == nil {
		r.kinds = map[string]map[string][]byte{}
	}
	m := r.kinds[kind]
	if m == nil {
		m = map[string][]byte{}
		r.kinds[kind] = m
	}
	if old, ok := m[key]; ok && onlyIfAbsent {
		return slices.Clone(old)
	}
	m[key] = slices.Clone(value)
	return slices.Clone(value)
}

// PutRecord implements transports.RecordStore.
func (t *Transport) PutRecord(_ context.Context, kind, key string, value []byte) error {
	if err := transports.ValidateRecord(kind, key); err != nil {
		return err
	}
	t.broker.records.put(kind, key, value, false)
	return nil
}

// ClaimRecord implements transports.RecordStore.
func (t *Transport) ClaimRecord(_ context.Context, kind, key string, value []byte) ([]byte, error) {
	if err := transports.ValidateRecord(kind, key); err != nil {
		return nil, err
	}
	return t.broker.records.put(kind, key, value, true), nil
}

// Records implements transports.RecordStore.
func (t *Transport) Records(_ context.Context, kind string) (map[string][]byte, error) {
	if err := transports.ValidateRecord(kind, "x"); err != nil {
		return nil, err
	}
	r := &t.broker.records
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string][]byte, len(r.kinds[kind]))
	for k, v := range maps.All(r.kinds[kind]) {
		out[k] = slices.Clone(v)
	}
	return out, nil
}

// DeleteRecord implements transports.RecordStore.
func (t *Transport) DeleteRecord(_ context.Context, kind, key string) error {
	if err := transports.ValidateRecord(kind, key); err != nil {
		return err
	}
	r := &t.broker.records
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.kinds[kind], key)
	return nil
}
