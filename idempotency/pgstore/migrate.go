package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/busline/busline/internal/pgident"
)

// DefaultTable is the table the store uses unless told otherwise.
const DefaultTable = "busline_dedup"

// ErrNoTable: the dedup table does not exist; run Migrate or open the store
// with migrate=true.
var ErrNoTable = errors.New("pgstore: dedup table does not exist")

// Execer runs SQL: a *pgxpool.Pool, *pgx.Conn or pgx.Tx.
type Execer interface {
	Exec(ctx context.Context, sql string, arguments ...any) (pgconn.CommandTag, error)
}

// quoteTable validates table ("name" or "schema.name", default
// DefaultTable) and returns it quoted, with the bare name.
func quoteTable(table string) (quoted, bare string, err error) {
	if table == "" {
		table = DefaultTable
	}
	quoted, bare, err = pgident.QuoteTable(table)
	if err != nil {
		return "", "", fmt.Errorf("pgstore: table %q: %w", table, err)
	}
	return quoted, bare, nil
}

// Schema returns the SQL that creates the dedup table and its expiry index
// (idempotent: IF NOT EXISTS), for programs that apply migrations with
// their own tool. table "" means DefaultTable.
func Schema(table string) (string, error) {
	q, bare, err := quoteTable(table)
	if err != nil {
		return "", err
	}
	idx := pgx.Identifier{bare + "_expires_at_idx"}.Sanitize()
	return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %[1]s (
	key        text        PRIMARY KEY,
	token      text        NOT NULL,
	state      text        NOT NULL CHECK (state IN ('leased', 'done')),
	expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS %[2]s ON %[1]s (expires_at);
`, q, idx), nil
}

// Migrate creates the dedup table and its index if they do not exist. It is
// safe to run from many processes at once (they serialise on an advisory
// lock) and inside the caller's own transaction. table "" means DefaultTable.
func Migrate(ctx context.Context, db Execer, table string) error {
	schema, err := Schema(table)
	if err != nil {
		return err
	}
	q, _, _ := quoteTable(table)
	// One simple-protocol query is one implicit transaction: the lock is
	// held until the table and index exist.
	sql := fmt.Sprintf("SELECT pg_advisory_xact_lock(%d);\n%s", lockID("migrate", q), schema)
	if _, err := db.Exec(ctx, sql); err != nil {
		return fmt.Errorf("pgstore: migrate %s: %w", q, err)
	}
	return nil
}

// lockID is the advisory lock key of key in table.
func lockID(table, key string) int64 { return pgident.LockID(table, key) }
