package outbox

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/internal/pgident"
)

// Options configure an Outbox. Zero fields take the defaults.
type Options struct {
	// Table is the outbox table, "name" or "schema.name". Default
	// DefaultTable. Processes that spell one table differently ("orders"
	// and "public.orders") share its relay lock and notifications: both
	// are keyed by the table's OID.
	Table string
	// AutoMigrate runs Migrate in New. Default false: New fails with
	// ErrNoTable (or ErrOldSchema) unless the table is up to date.
	AutoMigrate bool
	// DisableNotify stops Fire from sending a notification with each
	// event; the relay then finds new rows by polling only (PollInterval).
	// A transaction that notifies takes a database-wide lock for a moment
	// at commit; turn notifications off when that matters more than latency.
	DisableNotify bool
	// BatchSize is the most rows the relay reads and marks at once.
	// Default 100.
	BatchSize int
	// PollInterval is how long the relay waits for a notification before
	// it looks for new rows anyway. Default 1s.
	PollInterval time.Duration
	// Retention is how long a published row stays in the table, for
	// audit, before the relay deletes it. Default 24h; negative deletes a
	// row as soon as it is published.
	Retention time.Duration
	// CleanupInterval is how often the relay deletes rows older than
	// Retention. Default 1 minute.
	CleanupInterval time.Duration
	// PublishTimeout bounds one publish call to the transport (through the
	// messages' context, which every transport honours); a publish that
	// times out is tried again. Default 30s.
	PublishTimeout time.Duration
	// PublishRun is the most consecutive rows of one event name the relay
	// hands to the transport in one publish call (pipelined XADDs,
	// publishes confirmed together), instead of one round trip per event.
	// Default 1: one event per call, which keeps the order guarantees of
	// docs/outbox.md without exception. Above 1, a publish call that fails
	// part way (a broker error, a lost connection, PublishTimeout) may
	// have stored a later event of the run and not an earlier one; the
	// relay then publishes those rows again one per call (same event IDs:
	// the stored ones are duplicates idempotent listeners skip), so that
	// earlier event arrives after the later one.
	PublishRun int
	// MaxBackoff bounds the wait before the relay tries again after the
	// transport refused an event or the database failed. Default 5s.
	MaxBackoff time.Duration
	// Logger receives the relay's logs. Default slog.Default().
	Logger *slog.Logger
	// TracerProvider makes the relay's spans. Default
	// otel.GetTracerProvider(); give it the bus's bus.Config.TracerProvider.
	TracerProvider trace.TracerProvider
	// MeterProvider makes the relay's metrics. Default
	// otel.GetMeterProvider(); give it the bus's bus.Config.MeterProvider.
	MeterProvider metric.MeterProvider
	// Propagator reads the trace context of each event to link the relay's
	// span to it. Default otel.GetTextMapPropagator().
	Propagator propagation.TextMapPropagator
}

func (o Options) withDefaults() Options {
	if o.BatchSize <= 0 {
		o.BatchSize = 100
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.Retention == 0 {
		o.Retention = 24 * time.Hour
	}
	if o.CleanupInterval <= 0 {
		o.CleanupInterval = time.Minute
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = 30 * time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.PublishRun <= 0 {
		o.PublishRun = 1
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Outbox is the transactional outbox of one bus on one table: Fire writes
// events to it inside the caller's transaction, and its relay (Run, or
// Start and Close) publishes them to the bus's transport. It is safe for
// concurrent use.
type Outbox struct {
	bus     *bus.Bus
	pool    *pgxpool.Pool
	table   table
	opts    Options
	sql     statements
	lockID  int64  // the relay lock: the table's OID under a Busline prefix
	channel string // LISTEN/NOTIFY: "busline_outbox_{OID}"
	tel     *telemetry

	active atomic.Bool // this process's relay holds the lock

	// dbTimeout bounds each statement of the relay but its wait for the
	// lock: a relay whose connection died without a word (its network or
	// the database's machine vanished) notices it, stops counting itself
	// active and connects again, instead of waiting for TCP to give up
	// (a quarter of an hour and more).
	dbTimeout time.Duration

	// singleUntil: rows up to this id go one per publish call, after a
	// run of rows up to it failed (PublishRun above 1), so that an event
	// the broker refuses for good does not take the earlier events of its
	// run down with it on every retry. Only the relay goroutine uses it.
	singleUntil int64

	// afterPublish, when set (tests), runs after a batch was published
	// and before it is marked.
	afterPublish func(conn *pgx.Conn)

	mu        sync.Mutex
	stop      context.CancelFunc // of the relay Start started
	done      chan struct{}
	closed    bool
	closeOnce sync.Once
}

type statements struct {
	insert, pending, mark, cleanup, backlog string
}

func newStatements(t table, channel string, o Options) statements {
	s := statements{
		insert: fmt.Sprintf(`INSERT INTO %s (event_id, event, payload, metadata) VALUES ($1, $2, $3, $4)`, t.quoted),
		pending: fmt.Sprintf(`SELECT id, event_id, event, payload, metadata, extract(epoch FROM clock_timestamp() - created_at)
FROM %s WHERE published_at IS NULL ORDER BY id LIMIT $1`, t.quoted),
		mark: fmt.Sprintf(`UPDATE %s SET published_at = clock_timestamp() WHERE id = ANY($1) AND published_at IS NULL`, t.quoted),
		cleanup: fmt.Sprintf(`DELETE FROM %[1]s WHERE id = ANY(ARRAY(
	SELECT id FROM %[1]s WHERE published_at < clock_timestamp() - $1 * interval '1 millisecond' LIMIT $2))`, t.quoted),
		backlog: fmt.Sprintf(`SELECT count(*), coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)
FROM %s WHERE published_at IS NULL`, t.quoted),
	}
	if !o.DisableNotify {
		// The notification is sent only if the transaction commits;
		// PostgreSQL folds those of one transaction into one.
		s.insert = fmt.Sprintf(`WITH ins AS (%s RETURNING 1) SELECT pg_notify(%s, '') FROM ins`,
			s.insert, quoteLiteral(channel))
	}
	if o.Retention < 0 {
		s.mark = fmt.Sprintf(`DELETE FROM %s WHERE id = ANY($1)`, t.quoted)
	}
	return s
}

// defaultDBTimeout is the longest a statement of the active relay may take.
const defaultDBTimeout = 30 * time.Second

// relayLockPrefix is the high half of the relay lock's key, the low half
// being the table's OID.
var relayLockPrefix = pgident.LockID("busline", "outbox-relay") & 0x7fffffff

// quoteLiteral quotes s as an SQL string literal (s is a channel name:
// letters, digits and underscores).
func quoteLiteral(s string) string { return "'" + s + "'" }

// New returns the outbox of b on pool's database. It checks that the table
// is at SchemaVersion (migrating it when opts.AutoMigrate) and registers
// the relay's metrics. The relay does not run until Run or Start; a
// process that only fires never starts it. Close the outbox before the bus.
func New(ctx context.Context, b *bus.Bus, pool *pgxpool.Pool, opts Options) (*Outbox, error) {
	if b == nil || pool == nil {
		return nil, fmt.Errorf("outbox: New needs a bus and a pool")
	}
	t, err := parseTable(opts.Table)
	if err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	if opts.AutoMigrate {
		if err := t.migrate(ctx, pool); err != nil {
			return nil, err
		}
	}
	oid, v, err := t.lookup(ctx, pool)
	if err != nil {
		return nil, err
	}
	if v < SchemaVersion {
		return nil, fmt.Errorf("%w: %s is at version %d, this program needs %d; run outbox.Migrate (or apply outbox.Schema), or set Options.AutoMigrate", ErrOldSchema, t.quoted, v, SchemaVersion)
	}
	channel := fmt.Sprintf("busline_outbox_%d", oid)
	o := &Outbox{
		bus: b, pool: pool, table: t, opts: opts, sql: newStatements(t, channel, opts),
		lockID: relayLockPrefix<<32 | int64(oid), channel: channel, dbTimeout: defaultDBTimeout,
	}
	o.tel = newTelemetry(o)
	return o, nil
}

// Table returns the quoted name of the outbox table.
func (o *Outbox) Table() string { return o.table.quoted }

// Active reports whether the relay of this Outbox holds the database's
// relay lock at the moment: it is the one relay publishing from the table.
func (o *Outbox) Active() bool { return o.active.Load() }

// Fire writes the event to the outbox table inside tx and returns its ID.
// The event is built exactly as bus.Fire builds it (bus.FireTo): the ID —
// a new UUIDv7, or bus.WithEventID — is decided here and is the ID every
// listener will see, the metadata carries the CloudEvents attributes,
// bus.WithMetadata and the trace context of ctx (the PRODUCER span of this
// call). A delay (bus.WithDelay, bus.WithDeliverAt) fails with
// transports.ErrUnsupported: the relay publishes as soon as tx commits.
//
// The event is published by the relay only if tx commits, and at least
// once if it does: with listeners that deduplicate by event ID (the
// default; the Postgres idempotency store for exactly-once effects), the
// event is handled exactly once per listener if and only if tx commits.
//
// tx may be any pgx transaction, including pgstore.Tx(ctx) inside a
// handler: the event then goes out if and only if the handler's effects
// commit. Fire does not commit or roll back tx. Like bus.Fire it fails
// with bus.ErrClosed once the bus is closed: close the bus after the last
// transaction that fires.
func Fire[T any](ctx context.Context, tx pgx.Tx, o *Outbox, e bus.Event[T], payload T, opts ...bus.FireOption) (string, error) {
	if tx == nil || o == nil {
		return "", fmt.Errorf("outbox: Fire needs a transaction and an Outbox")
	}
	return bus.FireTo(ctx, o.bus, e, payload, o.write(tx), opts...)
}

// write returns the bus.PublishFunc that inserts a message into the table.
func (o *Outbox) write(tx pgx.Tx) bus.PublishFunc {
	return func(ctx context.Context, topic string, msg *message.Message) error {
		md := make(map[string]string, len(msg.Metadata))
		for k, v := range msg.Metadata {
			md[k] = v
		}
		if _, err := tx.Exec(ctx, o.sql.insert, msg.UUID, topic, msg.Payload, md); err != nil {
			return fmt.Errorf("outbox: write to %s: %w", o.table.quoted, err)
		}
		return nil
	}
}
