package transports

import (
	"context"
	"errors"
	"fmt"
	"regexp"
)

// RecordStore is the capability of keeping small durable records on the
// broker beside the events, readable by every process of every service and
// by the busline command: the owner of each consumer group, the JSON
// Schemas of events. Records are grouped by kind ("owners", "schemas");
// within a kind, a key names one record.
//
// Where it lives: memory, the broker's own map; Redis, one hash per kind
// ("{prefix}records:{kind}"); RabbitMQ, one durable stream queue per kind
// ("{exchange}.records.{kind}"), read from its first offset, where the
// last record of a key wins and the first claim of a key wins.
type RecordStore interface {
	// PutRecord stores value under (kind, key), replacing any earlier value.
	PutRecord(ctx context.Context, kind, key string, value []byte) error
	// ClaimRecord stores value under (kind, key) unless a value is already
	// there, atomically across processes, and returns the value stored
	// now: value itself when the claim took, the earlier value otherwise.
	ClaimRecord(ctx context.Context, kind, key string, value []byte) (stored []byte, err error)
	// Records returns every record of kind, by key (empty, not an error,
	// when the kind has none).
	Records(ctx context.Context, kind string) (map[string][]byte, error)
	// DeleteRecord removes the record (kind, key); removing a record that
	// does not exist is not an error.
	DeleteRecord(ctx context.Context, kind, key string) error
}

// Record kinds used by Busline.
const (
	// RecordKindOwners maps a consumer group to the (service, listener)
	// pair that owns it.
	RecordKindOwners = "owners"
	// RecordKindSchemas maps "{event}/{service}/{role}" to a published
	// event schema.
	RecordKindSchemas = "schemas"
)

// ErrInvalidRecord is returned for a record kind or key a RecordStore does not accept.
var ErrInvalidRecord = errors.New("transports: invalid record")

var (
	recordKindRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)
	recordKeyRE  = regexp.MustCompile(`^[A-Za-z0-9_.:/-]{1,512}$`)
)

// ValidateRecord checks a record kind and key: a kind is lower snake case
// (at most 32 characters), a key is 1–512 characters of letters, digits
// and "_.:/-". Every RecordStore calls it first, so that a key valid on
// one transport is valid on all.
func ValidateRecord(kind, key string) error {
	if !recordKindRE.MatchString(kind) {
		return fmt.Errorf("%w: kind %q (want lower snake case, at most 32 characters)", ErrInvalidRecord, kind)
	}
	if !recordKeyRE.MatchString(key) {
		return fmt.Errorf("%w: key %q (want 1-512 characters of letters, digits and _.:/-)", ErrInvalidRecord, key)
	}
	return nil
}
