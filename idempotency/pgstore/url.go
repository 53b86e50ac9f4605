package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/busline/busline/idempotency"
	"github.com/busline/busline/transports"
)

func init() {
	idempotency.Register("postgres", Open)
	idempotency.Register("postgresql", Open)
}

// DefaultMaxConns is the pool size when the URL sets no pool_max_conns:
// every handler in flight holds a connection for its transaction.
const DefaultMaxConns = 32

// Open opens a store from a postgres:// or postgresql:// URL, the way
// idempotency.Open does for those schemes:
//
//	postgres://user[:password]@host:5432/db?table=busline_dedup&migrate=true&cleanup=10m
//
// table is the dedup table (default DefaultTable); migrate=true creates it
// when missing; cleanup is the clean-up interval (a Go duration, 0 turns it
// off). Every other parameter goes to pgx (sslmode, pool_max_conns, ...);
// the pool holds DefaultMaxConns connections unless pool_max_conns says
// otherwise. The store owns the pool and closes it on Close.
func Open(ctx context.Context, u *url.URL, logger *slog.Logger) (idempotency.Store, error) {
	q := u.Query()
	opts := Options{Table: q.Get("table"), Logger: logger}
	if v := q.Get("migrate"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("pgstore: migrate=%q: want true or false", v)
		}
		opts.AutoMigrate = b
	}
	if v := q.Get("cleanup"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("pgstore: cleanup=%q: want a duration such as 10m, or 0 for none", v)
		}
		opts.CleanupInterval = d
		if d == 0 {
			opts.CleanupInterval = -1
		}
	}
	if _, ok := q["table"]; ok && opts.Table == "" {
		return nil, fmt.Errorf("pgstore: table= must not be empty")
	}
	for _, k := range []string{"table", "migrate", "cleanup"} {
		q.Del(k)
	}
	rest := *u
	rest.RawQuery = q.Encode()
	cfg, err := pgxpool.ParseConfig(rest.String())
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	if _, ok := q["pool_max_conns"]; !ok {
		cfg.MaxConns = DefaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	s, err := New(ctx, pool, opts)
	if err != nil {
		pool.Close()
		return nil, markRefused(err)
	}
	s.ownPool = true
	return s, nil
}

// markRefused wraps err with transports.ErrAccessRefused when the server
// refused the URL's user or password (SQLSTATE class 28: invalid
// authorization), with transports.ErrInvalidConfig when the URL's
// database does not exist (3D000: a fix of the URL, not a wait), and
// returns any other error as it is.
func markRefused(err error) error {
	var pe *pgconn.PgError
	switch {
	case !errors.As(err, &pe):
	case strings.HasPrefix(pe.Code, "28"):
		return fmt.Errorf("%w: %w", transports.ErrAccessRefused, err)
	case pe.Code == "3D000", pe.Code == "42704":
		// A database that does not exist; a URL parameter the server does
		// not know (unrecognized configuration parameter).
		return fmt.Errorf("%w: %w", transports.ErrInvalidConfig, err)
	}
	return err
}
