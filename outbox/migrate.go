package outbox

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/busline/busline/internal/pgident"
)

// DefaultTable is the outbox table unless Options.Table says otherwise.
const DefaultTable = "busline_outbox"

// SchemaVersion is the version of the table layout this package writes
// and reads. Migrate records it in the table's comment; New refuses a
// table of an older version unless Options.AutoMigrate.
const SchemaVersion = 1

var (
	// ErrNoTable: the outbox table does not exist; run Migrate or set
	// Options.AutoMigrate.
	ErrNoTable = errors.New("outbox: table does not exist")
	// ErrOldSchema: the outbox table was made by an older version of this
	// package; run Migrate or set Options.AutoMigrate.
	ErrOldSchema = errors.New("outbox: table has an older schema version")
)

// Execer runs SQL: a *pgxpool.Pool, *pgx.Conn or pgx.Tx.
type Execer interface {
	Exec(ctx context.Context, sql string, arguments ...any) (pgconn.CommandTag, error)
}

// schemaComment marks the table with its schema version.
const schemaComment = "busline outbox, schema version "

// migrations are the steps from version i to i+1, each idempotent, so
// that running them all again on a table at any version is harmless.
var migrations = []string{
	// 1: the table, the index the relay reads pending rows by, the index
	// the clean-up deletes old rows by.
	`CREATE TABLE IF NOT EXISTS %[1]s (
	id           bigserial   PRIMARY KEY,
	event_id     text        NOT NULL,
	event        text        NOT NULL,
	payload      bytea       NOT NULL,
	metadata     jsonb       NOT NULL,
	created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
	published_at timestamptz
);
CREATE INDEX IF NOT EXISTS %[2]s ON %[1]s (id) WHERE published_at IS NULL;
CREATE INDEX IF NOT EXISTS %[3]s ON %[1]s (published_at) WHERE published_at IS NOT NULL;
`,
}

// table is a validated outbox table name.
type table struct {
	quoted string // "schema"."name"
	bare   string // name
}

func parseTable(name string) (table, error) {
	if name == "" {
		name = DefaultTable
	}
	q, bare, err := pgident.QuoteTable(name)
	if err != nil {
		return table{}, fmt.Errorf("outbox: table %q: %w", name, err)
	}
	return table{quoted: q, bare: bare}, nil
}

// Schema returns the SQL that creates the outbox table and its indexes at
// SchemaVersion, idempotent (IF NOT EXISTS), for programs that apply
// migrations with their own tool. name "" means DefaultTable.
func Schema(name string) (string, error) {
	t, err := parseTable(name)
	if err != nil {
		return "", err
	}
	return t.schema(), nil
}

func (t table) schema() string {
	var b strings.Builder
	pending := pgx.Identifier{t.bare + "_pending_idx"}.Sanitize()
	published := pgx.Identifier{t.bare + "_published_at_idx"}.Sanitize()
	for _, m := range migrations {
		fmt.Fprintf(&b, m, t.quoted, pending, published)
	}
	fmt.Fprintf(&b, "COMMENT ON TABLE %s IS '%s%d';\n", t.quoted, schemaComment, SchemaVersion)
	return b.String()
}

// Migrate brings the outbox table to SchemaVersion: it creates the table
// and its indexes when missing and applies the later steps. It is safe to
// run from many processes at once (they serialise on an advisory lock),
// again on a migrated table, and inside the caller's own transaction.
// name "" means DefaultTable.
func Migrate(ctx context.Context, db Execer, name string) error {
	t, err := parseTable(name)
	if err != nil {
		return err
	}
	return t.migrate(ctx, db)
}

func (t table) migrate(ctx context.Context, db Execer) error {
	// One simple-protocol query is one implicit transaction: the lock is
	// held until every step ran. One lock for every outbox table: two
	// spellings of one table ("t", "public.t") must not race.
	sql := fmt.Sprintf("SELECT pg_advisory_xact_lock(%d);\n%s", pgident.LockID("busline", "outbox-migrate"), t.schema())
	if _, err := db.Exec(ctx, sql); err != nil {
		return fmt.Errorf("outbox: migrate %s: %w", t.quoted, err)
	}
	return nil
}

// lookup returns the table's OID (which names it whatever the search
// path or the spelling) and schema version (0 when unversioned), or
// ErrNoTable.
func (t table) lookup(ctx context.Context, q interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}) (oid uint32, version int, err error) {
	var id *uint32
	var comment *string
	err = q.QueryRow(ctx, "SELECT to_regclass($1)::oid, obj_description(to_regclass($1), 'pg_class')", t.quoted).Scan(&id, &comment)
	if err != nil {
		return 0, 0, fmt.Errorf("outbox: check table %s: %w", t.quoted, err)
	}
	if id == nil {
		return 0, 0, fmt.Errorf("%w: %s; create it with outbox.Migrate (or outbox.Schema in your migrations), or set Options.AutoMigrate", ErrNoTable, t.quoted)
	}
	if comment != nil && strings.HasPrefix(*comment, schemaComment) {
		version, _ = strconv.Atoi(strings.TrimPrefix(*comment, schemaComment))
	}
	return *id, version, nil
}
