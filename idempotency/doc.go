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
// Stores are chosen by URL, like transports: memory:// (this package, per
// process) is the default; redis:// and postgres:// live in the subpackages
// idempotency/redisstore and idempotency/pgstore, which register their
// schemes on import.
package idempotency
