package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/busline/busline/idempotency"
)

// BeginTx implements idempotency.TxStore: it begins a transaction, takes
// the key's advisory lock in it and writes the key's done row (expiring
// after retention) in it, all in the same statement. On Fresh the
// transaction stays open for the handler; otherwise it is rolled back.
func (s *Store) BeginTx(ctx context.Context, key string, leaseFor, retention time.Duration) (idempotency.State, idempotency.Lease, idempotency.Tx, error) {
	start := time.Now()
	token := newToken()
	// BEGIN and the claim go in one round trip.
	var c claimed
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	b.Queue(s.sql.claim, s.claimArgs(key, token, retention)...).QueryRow(func(row pgx.Row) error {
		return c.scan(row)
	})
	br := s.pool.SendBatch(ctx, b)
	tx := br.Tx()
	if err := br.Close(); err != nil {
		if tx != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
		return 0, idempotency.Lease{}, nil, fmt.Errorf("pgstore: claim %s: %w", key, err)
	}
	for range 5 {
		st, l, ok := c.decide(key, leaseFor)
		if ok && st == idempotency.Fresh {
			l.Token, l.Expires = token, start.Add(leaseFor)
			return st, l, &claimTx{tx: tx, key: key}, nil
		}
		if ok {
			if err := tx.Rollback(ctx); err != nil {
				return 0, idempotency.Lease{}, nil, fmt.Errorf("pgstore: end claim %s: %w", key, err)
			}
			return st, l, nil, nil
		}
		// A concurrent writer committed after the statement's snapshot:
		// look again (a new statement sees it; the lock is re-entrant).
		var err error
		if c, err = s.claim(ctx, tx, s.sql.claim, key, token, retention); err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			return 0, idempotency.Lease{}, nil, fmt.Errorf("pgstore: claim %s: %w", key, err)
		}
	}
	_ = tx.Rollback(context.WithoutCancel(ctx))
	return idempotency.Held, idempotency.Lease{Key: key, Expires: time.Now().Add(100 * time.Millisecond)}, nil, nil
}

// claimTx is the transaction of one fresh claim.
type claimTx struct {
	tx  pgx.Tx
	key string
	// Attempt scoping (idempotency.Attempts): while scoped, the first use
	// of the transaction in a handler call sets a savepoint.
	scoped bool
	sp     pgx.Tx
}

var (
	_ idempotency.Tx        = (*claimTx)(nil)
	_ idempotency.AttemptTx = (*claimTx)(nil)
)

type txKey struct{}

// WithContext implements idempotency.Tx.
func (c *claimTx) WithContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, txKey{}, &handlerTx{c: c})
}

// Commit implements idempotency.Tx.
func (c *claimTx) Commit(ctx context.Context) error {
	if err := c.tx.Commit(ctx); err != nil {
		if errors.Is(err, pgx.ErrTxCommitRollback) {
			return fmt.Errorf("pgstore: the transaction of %s failed (a statement of the handler returned an error it ignored) and was rolled back: %w", c.key, err)
		}
		return fmt.Errorf("pgstore: commit %s: %w", c.key, err)
	}
	return nil
}

// Rollback implements idempotency.Tx.
func (c *claimTx) Rollback(ctx context.Context) error {
	if err := c.tx.Rollback(ctx); err != nil && !errors.Is(err, pgx.ErrTxClosed) {
		return fmt.Errorf("pgstore: roll back %s: %w", c.key, err)
	}
	return nil
}

// BeginAttempt implements idempotency.AttemptTx. The savepoint is set
// lazily, so a handler call that does not touch the database costs nothing.
func (c *claimTx) BeginAttempt(context.Context) (func(context.Context, bool) error, error) {
	c.scoped, c.sp = true, nil
	return func(ctx context.Context, failed bool) error {
		sp := c.sp
		c.scoped, c.sp = false, nil
		if sp == nil || !failed {
			return nil // a successful call's savepoint is released by the commit
		}
		if err := sp.Rollback(ctx); err != nil {
			return fmt.Errorf("pgstore: roll back the failed attempt of %s: %w", c.key, err)
		}
		return nil
	}, nil
}

// use returns the transaction for a statement of the handler, setting the
// attempt's savepoint first when one is due.
func (c *claimTx) use(ctx context.Context) (pgx.Tx, error) {
	if c.scoped && c.sp == nil {
		sp, err := c.tx.Begin(ctx)
		if err != nil {
			return nil, fmt.Errorf("pgstore: savepoint for the attempt of %s: %w", c.key, err)
		}
		c.sp = sp
	}
	return c.tx, nil
}

// Tx returns the transaction of the event being handled: the one that
// holds its done row and commits when the handler returns nil. Write the
// handler's effects through it for exactly-once effects. Do not keep it
// after the handler returns, nor use it from several goroutines at once.
// Its Commit and Rollback do nothing (the middleware decides from the
// handler's error), and Begin opens a savepoint as with any pgx.Tx.
//
// Tx returns nil when ctx does not come from a handler run by the
// idempotency middleware over this store (idempotency turned off for the
// listener, another store, a duplicate).
func Tx(ctx context.Context) pgx.Tx {
	if h, ok := ctx.Value(txKey{}).(*handlerTx); ok {
		return h
	}
	return nil
}

// TxFrom is Tx with an explicit found flag.
func TxFrom(ctx context.Context) (pgx.Tx, bool) {
	tx := Tx(ctx)
	return tx, tx != nil
}
