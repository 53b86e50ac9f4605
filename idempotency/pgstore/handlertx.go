package pgstore

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// handlerTx is the pgx.Tx a handler gets from Tx: the claim's transaction,
// with Commit and Rollback left to the middleware and a savepoint set
// before the first statement of each scoped attempt.
type handlerTx struct{ c *claimTx }

var _ pgx.Tx = (*handlerTx)(nil)

// Begin opens a savepoint (a pseudo nested transaction).
func (h *handlerTx) Begin(ctx context.Context) (pgx.Tx, error) {
	tx, err := h.c.use(ctx)
	if err != nil {
		return nil, err
	}
	return tx.Begin(ctx)
}

// Commit does nothing: the middleware commits when the handler returns nil.
func (h *handlerTx) Commit(context.Context) error { return nil }

// Rollback does nothing: the middleware rolls back when the handler
// returns an error. Return the error instead.
func (h *handlerTx) Rollback(context.Context) error { return nil }

func (h *handlerTx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	tx, err := h.c.use(ctx)
	if err != nil {
		return 0, err
	}
	return tx.CopyFrom(ctx, table, columns, src)
}

func (h *handlerTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	tx, err := h.c.use(ctx)
	if err != nil {
		return pgx.FailedBatchResults(b, err)
	}
	return tx.SendBatch(ctx, b)
}

// LargeObjects sets the attempt's savepoint with a background context when due.
func (h *handlerTx) LargeObjects() pgx.LargeObjects {
	_, _ = h.c.use(context.Background())
	return h.c.tx.LargeObjects()
}

func (h *handlerTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	tx, err := h.c.use(ctx)
	if err != nil {
		return nil, err
	}
	return tx.Prepare(ctx, name, sql)
}

func (h *handlerTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tx, err := h.c.use(ctx)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	return tx.Exec(ctx, sql, args...)
}

func (h *handlerTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	tx, err := h.c.use(ctx)
	if err != nil {
		return nil, err
	}
	return tx.Query(ctx, sql, args...)
}

func (h *handlerTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	tx, err := h.c.use(ctx)
	if err != nil {
		return errRow{err}
	}
	return tx.QueryRow(ctx, sql, args...)
}

// Conn returns the connection of the transaction; statements sent on it
// directly run in the transaction too. It sets the attempt's savepoint with
// a background context when due.
func (h *handlerTx) Conn() *pgx.Conn {
	_, _ = h.c.use(context.Background())
	return h.c.tx.Conn()
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }
