package idempotency

import (
	"context"
	"time"
)

// TxStore is a Store that can record the done mark in the same database
// transaction as the handler's own writes. Middleware detects it: for a fresh
// claim it calls BeginTx instead of Begin, runs the handler with the
// transaction in its context (the store documents the accessor, for example
// pgstore.Tx), and commits the transaction only when the handler succeeded.
// The handler's effects and the done mark then commit together or not at
// all: exactly-once effects for handlers that write only through that
// transaction.
type TxStore interface {
	Store
	// BeginTx claims key inside a new transaction. On Fresh it returns an
	// open Tx in which the key is already marked done for retention; that
	// mark becomes visible only when the Tx commits and disappears if it
	// rolls back or its connection dies. On Done or Held the Tx is nil and
	// the Lease is as for Begin (Held carries the time after which a retry
	// makes sense).
	BeginTx(ctx context.Context, key string, leaseFor, retention time.Duration) (State, Lease, Tx, error)
}

// Tx is the open transaction of one fresh claim made by TxStore.BeginTx.
// Exactly one of Commit or Rollback must be called.
type Tx interface {
	// WithContext returns ctx carrying the transaction for the handler.
	WithContext(ctx context.Context) context.Context
	// Commit commits the handler's writes together with the done mark. It
	// fails with an error wrapping ErrLeaseLost when another holder claimed
	// the key meanwhile; the transaction is then rolled back.
	Commit(ctx context.Context) error
	// Rollback undoes the handler's writes and releases the claim.
	Rollback(ctx context.Context) error
}

// AttemptTx is implemented by a Tx that can undo one handler call alone
// (a savepoint), so that an in-process retry starts from a clean
// transaction. Attempts uses it.
type AttemptTx interface {
	// BeginAttempt opens a scope for one handler call. end(ctx, failed)
	// closes it: failed undoes the writes made since BeginAttempt, keeping
	// the claim.
	BeginAttempt(ctx context.Context) (end func(ctx context.Context, failed bool) error, err error)
}

type txKey struct{}

type txSession struct {
	tx       Tx
	inScope  bool // an Attempts scope is open
	attempts int  // handler calls scoped by Attempts
}

// withSession returns ctx carrying the claim's transaction for Attempts.
func withSession(ctx context.Context, s *txSession) context.Context {
	return context.WithValue(ctx, txKey{}, s)
}

func sessionFrom(ctx context.Context) *txSession {
	s, _ := ctx.Value(txKey{}).(*txSession)
	return s
}
