package idempotency

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/metric"

	"github.com/busline/busline/transports"
)

// Options configure Middleware.
type Options struct {
	// Store records processed keys. Required.
	Store Store
	// Group is the consumer group; keys are "{Group}:{event ID}". Required.
	Group string
	// Holder is the process taking leases; stores that record it (Redis)
	// let a restarted process with the same name take over the leases of
	// its earlier, dead run at once. The bus sets it.
	Holder Holder
	// Lease is how long a claim lasts before another consumer may take it
	// over; the bus uses the listener's AckTimeout.
	Lease time.Duration
	// Retention is how long a done key is remembered (default 7 days).
	Retention time.Duration
	// Logger receives debug logs for skipped duplicates and lease conflicts.
	Logger *slog.Logger
	// OnDuplicate is called when a done event is skipped (for metrics).
	OnDuplicate func(msg *message.Message)
	// OnConflict is called when another consumer holds the lease (for metrics).
	OnConflict func(msg *message.Message)
	// OnLeaseLost is called when the handler finished after its lease had
	// been taken over by another consumer (for metrics).
	OnLeaseLost func(msg *message.Message)
	// MeterProvider receives the middleware's counters. Default: the
	// global meter provider (otel.GetMeterProvider()).
	MeterProvider metric.MeterProvider
	// HeldWait is how long a delivery that finds its event held by another
	// consumer waits in process, asking the store again with a growing
	// interval (5ms to 200ms), for the holder to finish before it is put
	// back for redelivery: a duplicate that arrives while the first copy is
	// being handled is then acknowledged in milliseconds rather than after
	// the holder's lease. Default 1s; negative does not wait.
	HeldWait time.Duration
}

// Key returns the idempotency key of an event in a group.
func Key(group, eventID string) string { return group + ":" + eventID }

// Middleware runs the handler only for a fresh claim of the event's key,
// commits the key after the handler succeeded and aborts it when it failed
// (or panicked), so a retry runs it again. A duplicate of a done event
// returns nil (it is acknowledged) without running the handler. When
// another consumer holds the key, it waits up to HeldWait for the holder to
// finish; if the key is still held it returns an error wrapping ErrHeld
// and sets the delivery's RetryAfter to when the holder's lease expires.
//
// When the Store is a TxStore, a fresh claim runs the handler inside the
// store's transaction, which holds the done mark: the transaction commits
// only when the handler returned nil, otherwise it rolls back and the
// handler's writes vanish with the claim. Put Attempts inside the retry
// middleware so that in-process retries each start from a clean
// transaction.
//
// Every skipped duplicate, lease conflict and lost lease is logged at debug
// (warn for a lost lease) with the event ID, counted in the OpenTelemetry
// counters busline.idempotency.{duplicates,conflicts,lease_lost} of
// Options.MeterProvider (default the global one), and reported to the
// matching Options hook; a skipped duplicate also gets DeliveryInfo.Outcome
// OutcomeDuplicateSkipped.
func Middleware(opts Options) message.HandlerMiddleware {
	if opts.Store == nil || opts.Group == "" {
		panic("idempotency: Middleware needs a Store and a Group")
	}
	if opts.Lease <= 0 {
		opts.Lease = time.Minute
	}
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.HeldWait == 0 {
		opts.HeldWait = time.Second
	}
	m := &dedup{opts: opts, holder: opts.Holder, metrics: newMetrics(opts.Group, opts.MeterProvider)}
	m.txStore, _ = opts.Store.(TxStore)
	m.deferred, _ = opts.Store.(DeferredCommitter)
	if a, ok := opts.Store.(AheadClaimer); ok && m.txStore == nil {
		a.ExpectBegins(opts.Group, opts.Holder, opts.Lease)
	}
	if ext, ok := opts.Store.(LeaseExtender); ok {
		m.keeper = newKeeper(ext, opts.Lease)
	}
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			return m.handle(h, msg)
		}
	}
}

type dedup struct {
	opts     Options
	holder   any // opts.Holder, converted once for withHolder
	txStore  TxStore
	deferred DeferredCommitter
	metrics  *metrics
	keeper   *keeper // nil when the store's leases do not expire
}

func (m *dedup) handle(h message.HandlerFunc, msg *message.Message) ([]*message.Message, error) {
	ctx := msg.Context()
	key := Key(m.opts.Group, msg.UUID)
	state, lease, tx, err := m.begin(ctx, key)
	if err == nil && state == Held {
		m.conflict(msg, lease)
		state, lease, tx, err = m.awaitHolder(msg, key, state, lease)
	}
	if err != nil {
		// The handler did not run: never a reason to dead-letter.
		return nil, fmt.Errorf("idempotency: begin %s: %w (%w)", key, err, transports.ErrNotAttempted)
	}
	switch state {
	case Done:
		m.opts.Logger.LogAttrs(ctx, slog.LevelDebug, "duplicate event skipped",
			slog.String("event_id", msg.UUID), slog.String("event", transports.Info(msg).Topic), slog.String("group", m.opts.Group), slog.Int("attempt", transports.Info(msg).Attempt))
		m.metrics.duplicate(ctx)
		transports.Info(msg).Outcome = transports.OutcomeDuplicateSkipped
		if m.opts.OnDuplicate != nil {
			m.opts.OnDuplicate(msg)
		}
		return nil, nil
	case Held:
		info := transports.Info(msg)
		info.RetryAfter = max(time.Until(lease.Expires), 100*time.Millisecond)
		return nil, fmt.Errorf("%w (event %s, lease until %s)", ErrHeld, msg.UUID, lease.Expires.Format(time.RFC3339Nano))
	case Fresh:
	default:
		return nil, fmt.Errorf("idempotency: begin %s: store returned state %v", key, state)
	}
	if tx != nil {
		return m.runTx(h, msg, key, tx)
	}
	return m.run(h, msg, key, lease)
}

// begin claims key, in a transaction when the store offers one.
func (m *dedup) begin(ctx context.Context, key string) (State, Lease, Tx, error) {
	if m.opts.Holder.Process != "" {
		ctx = withHolder(ctx, m.holder)
	}
	if m.txStore != nil {
		return m.txStore.BeginTx(ctx, key, m.opts.Lease, m.opts.Retention)
	}
	st, l, err := m.opts.Store.Begin(ctx, key, m.opts.Lease)
	return st, l, nil, err
}

func (m *dedup) conflict(msg *message.Message, lease Lease) {
	ctx := msg.Context()
	m.opts.Logger.LogAttrs(ctx, slog.LevelDebug, "event held by another consumer",
		slog.String("event_id", msg.UUID), slog.String("event", transports.Info(msg).Topic), slog.String("group", m.opts.Group), slog.Int("attempt", transports.Info(msg).Attempt),
		slog.Time("lease_expires", lease.Expires), slog.Duration("wait", max(m.opts.HeldWait, 0)))
	m.metrics.conflict(ctx)
	if m.opts.OnConflict != nil {
		m.opts.OnConflict(msg)
	}
}

// awaitHolder asks the store again, at growing intervals, until the key is
// no longer held, HeldWait has passed, or the message's context ends.
func (m *dedup) awaitHolder(msg *message.Message, key string, state State, lease Lease) (State, Lease, Tx, error) {
	if m.opts.HeldWait <= 0 {
		return state, lease, nil, nil
	}
	ctx := msg.Context()
	deadline := time.Now().Add(m.opts.HeldWait)
	wait := 5 * time.Millisecond
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return state, lease, nil, nil
		}
		t := time.NewTimer(min(wait, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return state, lease, nil, nil
		case <-t.C:
		}
		st, l, tx, err := m.begin(ctx, key)
		if err != nil || st != Held {
			return st, l, tx, err
		}
		lease = l
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// run calls the handler under a plain lease: Commit on success, Abort on
// failure or panic.
func (m *dedup) run(h message.HandlerFunc, msg *message.Message, key string, lease Lease) (produced []*message.Message, herr error) {
	finished := false
	var alive *kept
	defer func() {
		if finished {
			return
		}
		if alive != nil {
			m.keeper.stop(alive)
		}
		// The handler panicked: release the key so the redelivery runs.
		ctx, cancel := finishContext(msg.Context())
		defer cancel()
		_ = m.opts.Store.Abort(ctx, lease)
	}()
	if m.keeper != nil {
		alive = m.keeper.start(lease)
	}
	produced, herr = h(msg)
	finished = true
	if alive != nil {
		m.keeper.stop(alive)
	}
	if herr == nil && m.deferred != nil && m.commitDeferred(msg, lease) {
		// The store applies the commit before the event's ack: the slot
		// need not wait for it.
		return produced, nil
	}
	ctx, cancel := finishContext(msg.Context())
	defer cancel()
	if herr != nil {
		if err := m.opts.Store.Abort(ctx, lease); err != nil {
			m.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "idempotency abort failed; a retry in another process waits for the lease to expire",
				slog.String("event_id", msg.UUID), slog.String("event", transports.Info(msg).Topic), slog.String("group", m.opts.Group), slog.Int("attempt", transports.Info(msg).Attempt), slog.Any("error", err))
		}
		return produced, herr
	}
	if err := m.opts.Store.Commit(ctx, lease, m.opts.Retention); err != nil {
		if errors.Is(err, ErrLeaseLost) {
			// The handler succeeded; another consumer took the key after
			// our lease ran out and may run it again.
			m.leaseLost(msg)
			return produced, nil
		}
		return produced, fmt.Errorf("idempotency: commit %s: %w", key, err)
	}
	return produced, nil
}

// runTx calls the handler inside the claim's transaction and commits it
// only when the handler succeeded.
func (m *dedup) runTx(h message.HandlerFunc, msg *message.Message, key string, tx Tx) (produced []*message.Message, herr error) {
	orig := msg.Context()
	msg.SetContext(withSession(tx.WithContext(orig), &txSession{tx: tx}))
	finished := false
	defer func() {
		msg.SetContext(orig)
		if finished {
			return
		}
		ctx, cancel := finishContext(orig)
		defer cancel()
		_ = tx.Rollback(ctx)
	}()
	produced, herr = h(msg)
	finished = true
	ctx, cancel := finishContext(orig)
	defer cancel()
	if herr != nil {
		if err := tx.Rollback(ctx); err != nil {
			m.opts.Logger.LogAttrs(ctx, slog.LevelDebug, "idempotency rollback failed; the database drops the transaction with its connection",
				slog.String("event_id", msg.UUID), slog.String("event", transports.Info(msg).Topic), slog.String("group", m.opts.Group), slog.Int("attempt", transports.Info(msg).Attempt), slog.Any("error", err))
		}
		return produced, herr
	}
	if err := tx.Commit(ctx); err != nil {
		if errors.Is(err, ErrLeaseLost) {
			// Nothing was committed: the holder that took the key runs it.
			m.leaseLost(msg)
		}
		return produced, fmt.Errorf("idempotency: commit %s with the handler's writes: %w", key, err)
	}
	return produced, nil
}

// commitDeferred hands the commit to the store (DeferredCommitter); it
// reports false when the store commits only synchronously.
func (m *dedup) commitDeferred(msg *message.Message, lease Lease) bool {
	ctx, info := msg.Context(), transports.Info(msg)
	return m.deferred.CommitDeferred(lease, m.opts.Retention, func(err error) {
		if err != nil {
			m.commitFailed(ctx, msg, info, err)
		}
	})
}

// commitFailed reports a deferred commit that found its lease lost (or
// failed otherwise) after the handler returned.
func (m *dedup) commitFailed(ctx context.Context, msg *message.Message, info *transports.DeliveryInfo, err error) {
	if errors.Is(err, ErrLeaseLost) {
		m.leaseLostInfo(ctx, msg, info)
		return
	}
	m.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "idempotency commit failed after the handler succeeded",
		slog.String("event_id", msg.UUID), slog.String("group", m.opts.Group), slog.Any("error", err))
}

func (m *dedup) leaseLost(msg *message.Message) {
	m.leaseLostInfo(msg.Context(), msg, transports.Info(msg))
}

func (m *dedup) leaseLostInfo(ctx context.Context, msg *message.Message, info *transports.DeliveryInfo) {
	m.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "idempotency lease lost before commit: handler ran longer than the lease",
		slog.String("event_id", msg.UUID), slog.String("event", info.Topic), slog.String("group", m.opts.Group), slog.Int("attempt", info.Attempt))
	m.metrics.leaseLost(ctx)
	if m.opts.OnLeaseLost != nil {
		m.opts.OnLeaseLost(msg)
	}
}
