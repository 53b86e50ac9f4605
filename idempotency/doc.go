// Package idempotency makes handlers see each event effectively once.
//
// Delivery is at-least-once, so the same event (same event ID) can reach a
// consumer group more than once: after a crash, an ack lost in a broker
// restart, or a duplicate fire. The Middleware keys each delivery by
// "{group}:{event ID}" and asks a Store for a lease before the handler runs:
//
//   - Fresh: nobody has processed it; the handler runs. On success the key is
//     committed as done for the retention window; on failure it is aborted so
//     the retry can run (unlike Watermill's Deduplicator, which records the key
//     before the handler and so drops an event whose first attempt failed).
//   - Done: a previous delivery succeeded; the event is acknowledged without
//     running the handler.
//   - Held: another consumer holds a live lease; the event is redelivered
//     later, not run in parallel. An expired lease can be taken over.
//
// A copy that finds its event held waits up to Options.HeldWait for the
// holder to finish before it is put back.
//
// A store that implements TxStore (the Postgres store) goes further: the
// done mark is written in a transaction that the handler also writes
// through, committed only when the handler succeeded, so the handler's
// database effects happen exactly once. Attempts, placed inside the retry
// middleware, rolls back each failed in-process try to a savepoint.
//
// Stores are chosen by URL, like transports: memory:// (this package, per
// process) is the default; redis:// and postgres:// live in the subpackages
// idempotency/redisstore and idempotency/pgstore, which register their
// schemes on import. Package idempotency/storetest is the conformance suite
// every store passes.
package idempotency
