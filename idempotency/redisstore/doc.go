// Package redisstore is the Redis idempotency store: dedup shared by every
// process of a consumer group that can reach one Redis.
//
// Importing it registers the redis:// and rediss:// schemes for
// bus.Config.Idempotency:
//
//	import _ "github.com/busline/busline/idempotency/redisstore"
//
//	cfg.Idempotency = "redis://localhost:6379/0?prefix=myapp:dedup:"
//
// Each key "{group}:{event ID}" is one Redis string "{prefix}{group}:{event ID}":
//
//   - Begin is one round trip: SET key token NX PX lease GET. A missing key
//     becomes our lease (a random token that expires after the lease). An
//     existing key costs a second round trip that reads its value and expiry
//     together (MULTI GET PTTL): the done marker means Done, another token
//     means Held until that expiry.
//   - Commit and Abort are one round trip each: a Lua script (EVALSHA, with
//     EVAL when Redis lost its script cache) that checks the token first, so
//     a holder whose lease expired and was taken over cannot mark the new
//     holder's claim done, nor release it. Commit replaces the token with the
//     done marker that expires after the retention.
//   - A reply lost with its connection does not hold the event: a SET that
//     go-redis sends again finds the caller's own token and is Fresh, and a
//     lease whose Begin, Commit or Abort returned an error (nobody works
//     under it) is taken over at once by the next Begin of the key in the
//     same Store. Other stores (other processes) still find it Held.
//   - Calls made while another is on the wire are sent together as one
//     pipeline when it returns (group commit, without a goroutine): under
//     load one round trip serves many handlers.
//   - The Redis transport's own store (the bus default on redis://) defers
//     commits (Options.DeferCommits): the middleware queues the commit and
//     returns, and the transport sends its XACKs through Store.Pipelined,
//     which holds each one back until the commits queued before it are
//     applied. A handler's slot takes its next event without waiting for
//     the commit, and an event is never acknowledged before its commit.
//   - With that store, the transport's reads also take the claims
//     (idempotency.AheadClaimer): once the middleware announced its group,
//     a read made while entries are waiting (the previous read was full)
//     runs XREADGROUP and the SET ... NX PX of each entry's key in one
//     script, and Begin adopts the claim without a round trip. A claim no
//     Begin adopted (a poison entry, an entry given back at a stop) is
//     released when the entry is settled; the tokens of a read whose reply
//     was lost are taken over at once by Begin in this store. Not on a
//     Cluster (the claim keys are not the script's declared keys), nor on a
//     transport made with redisstream.New on a caller's client.
//
// Redis decides expiry with its own clock; the done marker lives as long as
// the retention (7 days by default), so memory grows with the number of
// events handled in one retention window (about 100 bytes per key).
//
// Redis 7.0 or later runs Begin as SET ... NX GET; with an older server the
// store switches to an equivalent Lua script on the first Begin.
//
// The store dedups handlers; it does not make their effects atomic with the
// done mark: a process killed after its handler's effect and before Commit
// leaves a lease that expires, and the event runs again. Use the Postgres
// store (package pgstore) when the effects live in PostgreSQL.
package redisstore
