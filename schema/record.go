package schema

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/busline/busline/transports"
)

// Role is what a service does with an event.
type Role string

// Roles of a service towards an event.
const (
	// RoleFires: the service fires the event (bus.Declare).
	RoleFires Role = "fires"
	// RoleListens: the service listens to the event (bus.Listen).
	RoleListens Role = "listens"
)

// Record is the schema one service publishes for one event in one role.
// A bus writes one per event it fires and per event it listens to, at
// Start, under the key "{event}/{service}/{role}" of the record kind
// transports.RecordKindSchemas; a later Start of the same service
// replaces it.
type Record struct {
	// Event is the event name, "competitor_prices.changed".
	Event string `json:"event"`
	// Service is the service that fires or listens.
	Service string `json:"service"`
	// Role is RoleFires or RoleListens.
	Role Role `json:"role"`
	// Hash is the schema's version hash (see Hash).
	Hash string `json:"hash"`
	// Schema is the JSON Schema of the payload.
	Schema json.RawMessage `json:"schema"`
	// Listeners are the names of the service's listeners of the event
	// (RoleListens only).
	Listeners []string `json:"listeners,omitempty"`
	// Process is the process that published the record.
	Process string `json:"process,omitempty"`
	// PublishedAt is when the record was published.
	PublishedAt time.Time `json:"published_at,omitzero"`
}

// Key is the record's key: "{event}/{service}/{role}".
func (r Record) Key() string { return r.Event + "/" + r.Service + "/" + string(r.Role) }

// Publish writes records to the broker, each replacing the earlier record
// of its key.
func Publish(ctx context.Context, store transports.RecordStore, recs ...Record) error {
	for _, r := range recs {
		v, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("schema: encode record %s: %w", r.Key(), err)
		}
		if err := store.PutRecord(ctx, transports.RecordKindSchemas, r.Key(), v); err != nil {
			return fmt.Errorf("schema: publish %s: %w", r.Key(), err)
		}
	}
	return nil
}

// Published reads every schema record on the broker, sorted by event,
// role (fires first) and service. A record that does not decode is
// skipped and reported in the error list returned beside the records.
func Published(ctx context.Context, store transports.RecordStore) ([]Record, error) {
	raw, err := store.Records(ctx, transports.RecordKindSchemas)
	if err != nil {
		return nil, fmt.Errorf("schema: read records: %w", err)
	}
	out := make([]Record, 0, len(raw))
	var bad []string
	for k, v := range raw {
		var r Record
		if err := json.Unmarshal(v, &r); err != nil || r.Event == "" {
			bad = append(bad, k)
			continue
		}
		if r.Hash == "" {
			r.Hash = Hash(r.Schema)
		}
		out = append(out, r)
	}
	Sort(out)
	if len(bad) > 0 {
		sort.Strings(bad)
		return out, fmt.Errorf("schema: %d record(s) do not decode: %s", len(bad), strings.Join(bad, ", "))
	}
	return out, nil
}

// Sort orders records by event, role (fires first) and service.
func Sort(recs []Record) {
	sort.Slice(recs, func(i, j int) bool {
		a, b := recs[i], recs[j]
		if a.Event != b.Event {
			return a.Event < b.Event
		}
		if a.Role != b.Role {
			return a.Role == RoleFires
		}
		return a.Service < b.Service
	})
}
