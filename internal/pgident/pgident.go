// Package pgident holds what Busline's PostgreSQL packages (the idempotency
// store, the outbox) share about the tables they own: validating and
// quoting a table name, and advisory lock keys.
package pgident

import (
	"errors"
	"hash/fnv"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
)

// ErrBadTable: a table name is not "name" or "schema.name" of letters,
// digits and underscores.
var ErrBadTable = errors.New("want name or schema.name of letters, digits and underscores")

var tableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,50}(\.[A-Za-z_][A-Za-z0-9_]{0,50})?$`)

// QuoteTable validates table ("name" or "schema.name") and returns it
// quoted, with the bare name (without schema).
func QuoteTable(table string) (quoted, bare string, err error) {
	if !tableName.MatchString(table) {
		return "", "", ErrBadTable
	}
	parts := strings.Split(table, ".")
	return pgx.Identifier(parts).Sanitize(), parts[len(parts)-1], nil
}

// LockID is the advisory lock key of key within scope: 64 bits of FNV-1a
// over both.
func LockID(scope, key string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(scope))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(key))
	return int64(h.Sum64())
}
