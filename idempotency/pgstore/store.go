package pgstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/busline/busline/idempotency"
)

// Options configure a Store.
type Options struct {
	// Table is the dedup table, "name" or "schema.name". Default
	// DefaultTable. URL: table.
	Table string
	// AutoMigrate creates the table on open when it is missing. Default
	// false: New fails with ErrNoTable. URL: migrate=true.
	AutoMigrate bool
	// CleanupInterval is how often the store deletes expired rows. Default
	// 10 minutes; negative turns the clean-up off. URL: cleanup (0 = off).
	CleanupInterval time.Duration
	// CleanupBatch is the most rows one DELETE removes. Default 10,000.
	CleanupBatch int
	// Logger receives clean-up errors. Default slog.Default().
	Logger *slog.Logger
}

// Store is the PostgreSQL idempotency store; see the package doc. It is
// safe for concurrent use by many goroutines and processes.
type Store struct {
	pool     *pgxpool.Pool
	ownPool  bool
	table    string // quoted
	opts     Options
	sql      statements
	life     context.Context // cancelled by Close
	stop     context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
}

type statements struct {
	begin, claim, commit, abort, cleanup string
}

var (
	_ idempotency.Store   = (*Store)(nil)
	_ idempotency.TxStore = (*Store)(nil)
)

// New returns a store on pool. It checks that the table exists (creating
// it when opts.AutoMigrate) and starts the periodic clean-up, which Close
// stops. Close does not close a pool passed here.
func New(ctx context.Context, pool *pgxpool.Pool, opts Options) (*Store, error) {
	q, _, err := quoteTable(opts.Table)
	if err != nil {
		return nil, err
	}
	if opts.CleanupInterval == 0 {
		opts.CleanupInterval = 10 * time.Minute
	}
	if opts.CleanupBatch <= 0 {
		opts.CleanupBatch = 10_000
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.AutoMigrate {
		if err := Migrate(ctx, pool, opts.Table); err != nil {
			return nil, err
		}
	} else {
		var exists bool
		if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", q).Scan(&exists); err != nil {
			return nil, fmt.Errorf("pgstore: check table %s: %w", q, err)
		}
		if !exists {
			return nil, fmt.Errorf("%w: %s; create it with pgstore.Migrate (or pgstore.Schema in your migrations), or add migrate=true to the store URL", ErrNoTable, q)
		}
	}
	s := &Store{pool: pool, table: q, opts: opts, sql: newStatements(q)}
	s.life, s.stop = context.WithCancel(context.Background())
	if opts.CleanupInterval > 0 {
		s.wg.Add(1)
		go s.cleanupLoop()
	}
	return s, nil
}

// The claim statements take the key's advisory lock for the current
// transaction first, so that a claim never waits behind a transaction that
// holds the key: a busy lock means Held. $1 key, $2 token, $3 lease or
// retention in ms, $4 lock ID. They return whether the lock was taken, the
// expiry of the row written (NULL if none) and the row as it was.
const claimTemplate = `WITH lk AS MATERIALIZED (SELECT pg_try_advisory_xact_lock($4) AS got),
ins AS (
	INSERT INTO %[1]s AS d (key, token, state, expires_at)
	SELECT $1, $2, '%[2]s', now() + $3 * interval '1 millisecond' FROM lk WHERE lk.got
	ON CONFLICT (key) DO UPDATE
		SET token = EXCLUDED.token, state = EXCLUDED.state, expires_at = EXCLUDED.expires_at
		WHERE d.expires_at <= now()
	RETURNING d.expires_at
)
SELECT lk.got, (SELECT expires_at FROM ins), cur.state, cur.expires_at, now()
FROM lk LEFT JOIN %[1]s cur ON cur.key = $1`

func newStatements(q string) statements {
	return statements{
		// Begin: a committed lease row.
		begin: fmt.Sprintf(claimTemplate, q, "leased"),
		// BeginTx: the done row, inside the handler's transaction.
		claim: fmt.Sprintf(claimTemplate, q, "done"),
		// Commit: the key must still hold our lease, or be free.
		commit: fmt.Sprintf(`INSERT INTO %[1]s AS d (key, token, state, expires_at)
VALUES ($1, $2, 'done', now() + $3 * interval '1 millisecond')
ON CONFLICT (key) DO UPDATE
	SET token = EXCLUDED.token, state = 'done', expires_at = EXCLUDED.expires_at
	WHERE (d.token = $2 AND d.state = 'leased') OR d.expires_at <= now()`, q),
		abort: fmt.Sprintf(`DELETE FROM %s WHERE key = $1 AND token = $2 AND state = 'leased'`, q),
		cleanup: fmt.Sprintf(`DELETE FROM %[1]s WHERE ctid = ANY(ARRAY(
	SELECT ctid FROM %[1]s WHERE expires_at < now() LIMIT $1 FOR UPDATE SKIP LOCKED))`, q),
	}
}

// Table returns the quoted name of the dedup table.
func (s *Store) Table() string { return s.table }

// Pool returns the pool the store uses.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// claimed is a decoded claim statement row.
type claimed struct {
	got      bool
	wrote    *time.Time
	curState *string
	curExp   *time.Time
	now      time.Time
}

func (c claimed) live() bool { return c.curExp != nil && c.curExp.After(c.now) }

// decide maps a claim row to a state; ok is false when the statement raced
// with a writer it could not see and must run again.
func (c claimed) decide(key string, leaseFor time.Duration) (state idempotency.State, l idempotency.Lease, ok bool) {
	l = idempotency.Lease{Key: key}
	switch {
	case c.wrote != nil:
		return idempotency.Fresh, l, true
	case c.live() && *c.curState == "done":
		l.Expires = localTime(*c.curExp, c.now)
		return idempotency.Done, l, true
	case c.live():
		l.Expires = localTime(*c.curExp, c.now)
		return idempotency.Held, l, true
	case !c.got:
		// A transaction holds the key; it ends within its lease.
		l.Expires = time.Now().Add(leaseFor)
		return idempotency.Held, l, true
	}
	return 0, l, false
}

// localTime converts a database time to this process's clock, so that
// clock skew between the two does not stretch or shorten a wait.
func localTime(t, dbNow time.Time) time.Time { return time.Now().Add(t.Sub(dbNow)) }

// Begin implements idempotency.Store with a committed lease row. The
// middleware uses BeginTx instead.
func (s *Store) Begin(ctx context.Context, key string, leaseFor time.Duration) (idempotency.State, idempotency.Lease, error) {
	token := newToken()
	start := time.Now()
	for range 5 {
		c, err := s.claim(ctx, s.pool, s.sql.begin, key, token, leaseFor)
		if err != nil {
			return 0, idempotency.Lease{}, fmt.Errorf("pgstore: begin %s: %w", key, err)
		}
		if st, l, ok := c.decide(key, leaseFor); ok {
			if st == idempotency.Fresh {
				l.Token, l.Expires = token, start.Add(leaseFor)
			}
			return st, l, nil
		}
	}
	return idempotency.Held, idempotency.Lease{Key: key, Expires: time.Now().Add(100 * time.Millisecond)}, nil
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (s *Store) claim(ctx context.Context, q querier, sql, key, token string, d time.Duration) (claimed, error) {
	var c claimed
	err := c.scan(q.QueryRow(ctx, sql, s.claimArgs(key, token, d)...))
	return c, err
}

func (s *Store) claimArgs(key, token string, d time.Duration) []any {
	return []any{key, token, max(d.Milliseconds(), 1), lockID(s.table, key)}
}

func (c *claimed) scan(row pgx.Row) error {
	return row.Scan(&c.got, &c.wrote, &c.curState, &c.curExp, &c.now)
}

// Commit implements idempotency.Store.
func (s *Store) Commit(ctx context.Context, l idempotency.Lease, retention time.Duration) error {
	tag, err := s.pool.Exec(ctx, s.sql.commit, l.Key, l.Token, max(retention.Milliseconds(), 1))
	if err != nil {
		return fmt.Errorf("pgstore: commit %s: %w", l.Key, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("pgstore: commit %s: %w", l.Key, idempotency.ErrLeaseLost)
	}
	return nil
}

// Abort implements idempotency.Store.
func (s *Store) Abort(ctx context.Context, l idempotency.Lease) error {
	if _, err := s.pool.Exec(ctx, s.sql.abort, l.Key, l.Token); err != nil {
		return fmt.Errorf("pgstore: abort %s: %w", l.Key, err)
	}
	return nil
}

// Close stops the clean-up and closes the pool when the store opened it
// from a URL.
func (s *Store) Close() error {
	s.stopOnce.Do(func() {
		s.stop()
		s.wg.Wait()
		if s.ownPool {
			s.pool.Close()
		}
	})
	return nil
}

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
