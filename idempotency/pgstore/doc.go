// Package pgstore is the PostgreSQL idempotency store. Beyond dedup shared
// by every process that reaches the database, it gives handlers
// exactly-once effects: the "done" mark of an event is written in the same
// transaction as the handler's own writes.
//
// Importing it registers the postgres:// and postgresql:// schemes for
// bus.Config.Idempotency:
//
//	import _ "github.com/busline/busline/idempotency/pgstore"
//
//	cfg.Idempotency = "postgres://app@db:5432/app?migrate=true"
//
// # Exactly-once effects
//
// The store implements idempotency.TxStore, so the idempotency middleware
// runs each fresh event inside a transaction that already holds the event's
// done row. The handler takes that transaction from its context with Tx
// and writes through it:
//
//	func(ctx context.Context, d bus.Delivery[Order]) error {
//		_, err := pgstore.Tx(ctx).Exec(ctx, `INSERT INTO invoices ...`, ...)
//		return err
//	}
//
// The middleware commits the transaction only when the handler returns nil.
// Either the handler's rows and the done row commit together, or neither
// does: a failed handler, a panic, a lost connection or a process killed
// with SIGKILL between the write and the commit all leave no trace, and the
// redelivered event runs again from scratch. A duplicate of a committed
// event finds the done row and is acknowledged without running.
//
// Concurrent duplicates are serialised by a transaction-scoped advisory lock
// on the key (pg_try_advisory_xact_lock): the second copy does not wait for
// the first; it is put back for redelivery (idempotency.ErrHeld) and finds
// the done row later. The lock ends with the transaction or its connection,
// so a crashed holder never blocks a redelivery.
//
// Writes made outside Tx (another pool, an HTTP call, a message) are not
// covered; they happen at least once, as with any store.
//
// Add idempotency.Attempts inside the retry middleware (bus.Use does that)
// so that each in-process retry rolls back to a savepoint and the writes of
// a failed try never commit.
//
// # Table
//
// One table (default busline_dedup, URL option table=) holds a row per key:
//
//	key text PRIMARY KEY, token text, state text ('leased' | 'done'), expires_at timestamptz
//
// with an index on expires_at. Create it with Migrate (or Schema for a
// migration tool), or let the store create it on open with migrate=true.
// Expired rows are deleted in batches every cleanup= interval (default
// 10m, 0 turns it off) by every process; Cleanup runs one pass.
package pgstore
