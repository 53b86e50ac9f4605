// Package outbox is the transactional outbox of Busline on PostgreSQL: an
// event fired inside a database transaction is published if and only if
// the transaction commits, with the ID it was given when fired.
//
//	ob, err := outbox.New(ctx, b, pool, outbox.Options{AutoMigrate: true})
//	ob.Start() // the relay: publish committed events; Close it before the bus
//	defer ob.Close()
//
//	tx, _ := pool.Begin(ctx)
//	tx.Exec(ctx, `INSERT INTO orders ...`)
//	id, err := outbox.Fire(ctx, tx, ob, OrderPlaced, order)
//	tx.Commit(ctx) // the order and its event, or neither
//
// Fire builds the event exactly as bus.Fire does (through bus.FireTo) and
// writes it — event ID, name, payload, metadata and trace context — as a
// row of the outbox table in the caller's transaction. It never talks to
// the broker, so it cannot fail because the broker is down, and a
// transaction that rolls back leaves no event.
//
// # The relay
//
// The relay (Outbox.Run, or Start and Close) publishes committed rows to
// the bus's transport and marks them published. Run it in every process
// of the service: the relays of one table share a session advisory lock,
// so exactly one publishes while the others wait on standby, and one of
// them takes over as soon as the holder's database session ends (its
// process died, its connection broke). It wakes when a transaction that
// fired commits (LISTEN/NOTIFY, sent by Fire in the transaction) and every
// PollInterval in any case.
//
// Delivery is at least once: a relay that dies between publishing a batch
// and marking it publishes that batch again, with the same event IDs. The
// listeners' deduplication by event ID (on by default) makes those copies
// harmless; with the Postgres idempotency store (idempotency/pgstore) the
// listeners' effects happen exactly once per committed transaction.
//
// # Order
//
// The relay never keeps a high-water mark: each batch is the unpublished
// rows, in id order, that the database shows it, so a row whose
// transaction commits late (its id is smaller than that of rows already
// published) is published when it becomes visible, never skipped. The
// order it gives:
//
//   - events fired in one transaction are published in the order they were
//     fired;
//   - if transaction A committed before transaction B fired its first
//     event, A's events are published before B's;
//   - events of transactions that overlapped are published in the order
//     they became visible to the relay, then by id: an order that may
//     differ from their commit order, since PostgreSQL does not expose
//     one.
//
// A batch is published one event at a time and stops at the first event
// the transport refuses; the relay retries from that event with backoff,
// so no event is published before one ordered ahead of it, except the
// copies republished after a crash. Keep the id sequence without CACHE
// (the default) for the second guarantee.
//
// # Table and retention
//
// One table (default busline_outbox, Options.Table) holds a row per event:
//
//	id bigserial, event_id text, event text, payload bytea, metadata jsonb,
//	created_at timestamptz, published_at timestamptz (NULL until published)
//
// Create it with Migrate (or Schema in your own migrations), or let New
// create it with Options.AutoMigrate; migrations are versioned
// (SchemaVersion, recorded in the table's comment) and idempotent. The
// active relay deletes rows published more than Options.Retention ago
// (default 24h, kept for audit) every Options.CleanupInterval.
//
// # Observability
//
// The relay reports the metrics named by the Metric constants (events
// published, publish errors, write-to-publish delay, the age and size of
// the backlog, which process is active) and a PRODUCER span per batch
// linked to the spans of the Fire calls. The listeners' spans stay
// children of the Fire span: the trace goes from the transaction that
// fired to the handler.
package outbox
