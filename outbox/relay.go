package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
)

// Run runs a relay in the calling goroutine until ctx is done, then
// returns nil. The relay connects to the database on a connection of its
// own (made from the pool's configuration) and waits for the table's relay
// lock, a session advisory lock: one relay per table and database
// publishes, the others wait on standby and the first of them takes over
// the moment the holder's connection ends (its process died, its database
// connection broke). Lost connections are re-made with backoff.
//
// The active relay reads the table's unpublished rows in id order, in
// batches of BatchSize, publishes each through the bus's transport (the
// Watermill message UUID is the event ID), and marks the batch published.
// It reads again at once after a full batch, when a transaction that
// fired commits (LISTEN/NOTIFY), and every PollInterval. It deletes rows
// published more than Retention ago every CleanupInterval.
//
// Run may be called in several processes, and more than once in one; use
// Start and Close for a relay the Outbox owns.
func (o *Outbox) Run(ctx context.Context) error {
	backoff := newBackoff(o.opts.MaxBackoff)
	for ctx.Err() == nil {
		began := time.Now()
		err := o.session(ctx)
		if ctx.Err() != nil {
			break
		}
		if time.Since(began) > 10*o.opts.MaxBackoff {
			backoff.reset()
		}
		d := backoff.next()
		o.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "outbox relay: session ended; connecting again",
			slog.String("table", o.table.quoted), slog.Duration("retry_in", d), slog.Any("error", err))
		if !sleep(ctx, d) {
			break
		}
	}
	return nil
}

// Start runs a relay (see Run) in a goroutine the Outbox owns until Close.
// Starting it twice is an error.
func (o *Outbox) Start() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return errors.New("outbox: closed")
	}
	if o.stop != nil {
		return errors.New("outbox: relay already started")
	}
	ctx, stop := context.WithCancel(context.Background())
	o.stop, o.done = stop, make(chan struct{})
	go func() {
		defer close(o.done)
		_ = o.Run(ctx)
	}()
	return nil
}

// Close stops the relay Start started, waiting for it to mark what it
// published, and unregisters the metrics. It does not close the pool or the
// bus. Close is idempotent.
func (o *Outbox) Close() error {
	o.closeOnce.Do(func() {
		o.mu.Lock()
		o.closed = true
		stop, done := o.stop, o.done
		o.mu.Unlock()
		if stop != nil {
			stop()
			<-done
		}
		o.tel.close()
	})
	return nil
}

// relaySettings configure the relay's session. A standby waits for the
// lock for as long as the holder lives: no server-side timeout may cancel
// the wait. The server probes an idle client after 10s, every 5s, and ends
// the session after 3 unanswered probes: a holder whose machine or network
// vanished without closing the connection frees the lock in about 25s, not
// after the system's default of two hours and more. They are SET after
// connecting, not sent as startup parameters, which PgBouncer refuses.
const relaySettings = `SET statement_timeout = 0; SET lock_timeout = 0;
SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3`

// session connects, waits for the lock and relays until the connection
// fails (the error) or ctx is done (nil).
func (o *Outbox) session(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, o.pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("outbox: connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx) // ends the session: releases the lock
	}()
	sctx, cancel := context.WithTimeout(ctx, o.dbTimeout)
	_, err = conn.Exec(sctx, relaySettings)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("outbox: configure the relay's session: %w", err)
	}
	// Standby: block until the holder's session ends.
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", o.lockID); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("outbox: wait for the relay lock: %w", err)
	}
	o.active.Store(true)
	defer o.active.Store(false)
	o.opts.Logger.LogAttrs(ctx, slog.LevelInfo, "outbox relay active", slog.String("table", o.table.quoted))
	if !o.opts.DisableNotify {
		lctx, cancel := context.WithTimeout(ctx, o.dbTimeout)
		_, err := conn.Exec(lctx, "LISTEN "+pgx.Identifier{o.channel}.Sanitize())
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("outbox: listen: %w", err)
		}
	}
	pubBackoff := newBackoff(o.opts.MaxBackoff)
	nextCleanup, cleaning := time.Now(), false
	for {
		// Drop the notifications received so far: the read below covers
		// their commits. Reads happen without a wait in between while a
		// backlog drains or the transport refuses, and pgx keeps every
		// notification a read receives until it is taken.
		for drainOne(conn) {
		}
		if o.opts.Retention >= 0 && (cleaning || !time.Now().Before(nextCleanup)) {
			// One chunk, then a batch: a long clean-up does not keep new
			// events waiting.
			more, err := o.cleanup(ctx, conn)
			if err != nil {
				return o.sessionErr(ctx, err)
			}
			if cleaning = more; !more {
				nextCleanup = time.Now().Add(o.opts.CleanupInterval)
			}
		}
		n, pubErr, err := o.relayBatch(ctx, conn)
		if err != nil {
			return o.sessionErr(ctx, err)
		}
		if pubErr != nil {
			if ctx.Err() != nil {
				return nil // stopped while publishing
			}
			// The broker refused an event: keep the lock and try again
			// from that event, later.
			d := pubBackoff.next()
			o.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "outbox relay: publish failed; retrying",
				slog.String("table", o.table.quoted), slog.Duration("retry_in", d), slog.Any("error", pubErr))
			if !sleep(ctx, d) {
				return nil
			}
			continue
		}
		pubBackoff.reset()
		if n == o.opts.BatchSize || cleaning {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, o.opts.PollInterval)
		_, err = conn.WaitForNotification(wctx)
		timedOut := wctx.Err() != nil
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && !timedOut:
			return fmt.Errorf("outbox: wait for notifications: %w", err)
		}
	}
}

// drainOne takes one notification already received, without reading
// from the connection.
func drainOne(conn *pgx.Conn) bool {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n, _ := conn.WaitForNotification(ctx)
	return n != nil
}

func (o *Outbox) sessionErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// row is one unpublished outbox row.
type row struct {
	id       int64
	eventID  string
	event    string
	payload  []byte
	metadata map[string]string
	age      float64 // seconds since it was written, by the database's clock
}

// relayBatch publishes the next batch in id order and marks what it
// published. It stops at the first event the transport refuses (pubErr),
// so that no event is published before those ordered ahead of it; err is
// a database error that ends the session.
func (o *Outbox) relayBatch(ctx context.Context, conn *pgx.Conn) (n int, pubErr, err error) {
	rctx, cancel := context.WithTimeout(ctx, o.dbTimeout)
	defer cancel()
	rows, err := conn.Query(rctx, o.sql.pending, o.opts.BatchSize)
	if err != nil {
		return 0, nil, fmt.Errorf("outbox: read %s: %w", o.table.quoted, err)
	}
	var batch []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.eventID, &r.event, &r.payload, &r.metadata, &r.age); err != nil {
			rows.Close()
			return 0, nil, fmt.Errorf("outbox: read %s: %w", o.table.quoted, err)
		}
		batch = append(batch, r)
	}
	if err := rows.Err(); err != nil {
		return 0, nil, fmt.Errorf("outbox: read %s: %w", o.table.quoted, err)
	}
	if len(batch) == 0 {
		return 0, nil, nil
	}
	pctx, span := o.tel.startBatch(ctx, batch)
	done := make([]int64, 0, len(batch))
	contact := time.Now() // the database last answered
	for i := 0; i < len(batch); {
		if ctx.Err() != nil {
			break // Close: no new run; the rest goes out at the next start
		}
		if i > 0 && time.Since(contact) > o.opts.PollInterval {
			// Publishing is slow: if the session ended meanwhile, a
			// standby may hold the lock and publish these very rows.
			// Make sure the session lives before publishing more.
			if err = o.ping(ctx, conn); err != nil {
				break
			}
			contact = time.Now()
		}
		limit := o.opts.PublishRun
		if batch[i].id <= o.singleUntil {
			limit = 1
		}
		run := nextRun(batch[i:], limit)
		if pubErr = o.publishRun(pctx, run); pubErr != nil {
			if ctx.Err() == nil { // not cut short by Close
				o.tel.failed(pctx, run[0].event, pubErr)
			}
			if len(run) > 1 {
				o.singleUntil = run[len(run)-1].id
			}
			break
		}
		for _, r := range run {
			o.tel.published(pctx, r)
			done = append(done, r.id)
		}
		i += len(run)
	}
	if o.afterPublish != nil {
		o.afterPublish(conn)
	}
	if len(done) > 0 && err == nil {
		// Mark even when ctx ended meanwhile: what was published should
		// not go out again after a clean stop.
		mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.dbTimeout)
		_, err = conn.Exec(mctx, o.sql.mark, done)
		cancel()
		if err != nil {
			err = fmt.Errorf("outbox: mark %d published rows of %s: %w", len(done), o.table.quoted, err)
		}
	}
	span.end(len(done), pubErr, err)
	return len(batch), pubErr, err
}

// nextRun returns the first rows of rows that share the first one's event
// name, at most limit of them.
func nextRun(rows []row, limit int) []row {
	n := 1
	for n < len(rows) && n < limit && rows[n].event == rows[0].event {
		n++
	}
	return rows[:n]
}

// publishRun publishes the events of run, which share one event name, in
// one call to the transport, bounded by PublishTimeout. Close cuts it
// short: the run is not marked, and goes out again (same event IDs) at
// the next start.
func (o *Outbox) publishRun(ctx context.Context, run []row) error {
	ctx, cancel := context.WithTimeout(ctx, o.opts.PublishTimeout)
	defer cancel()
	msgs := make([]*message.Message, len(run))
	for i, r := range run {
		msgs[i] = &message.Message{UUID: r.eventID, Metadata: r.metadata, Payload: r.payload}
		msgs[i].SetContext(ctx)
	}
	err := o.bus.Transport().Publish(run[0].event, msgs...)
	switch {
	case err == nil:
		return nil
	case len(run) == 1:
		return fmt.Errorf("outbox: publish %s %s: %w", run[0].event, run[0].eventID, err)
	}
	return fmt.Errorf("outbox: publish %d %s events from %s: %w", len(run), run[0].event, run[0].eventID, err)
}

// ping checks that the relay's session lives.
func (o *Outbox) ping(ctx context.Context, conn *pgx.Conn) error {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.dbTimeout)
	defer cancel()
	if err := conn.Ping(pctx); err != nil {
		return fmt.Errorf("outbox: the relay's session ended while it published a batch of %s: %w", o.table.quoted, err)
	}
	return nil
}

// cleanup deletes a chunk (10 batches' worth) of the rows published more
// than Retention ago; more reports that the chunk was full.
func (o *Outbox) cleanup(ctx context.Context, conn *pgx.Conn) (more bool, err error) {
	limit := 10 * o.opts.BatchSize
	dctx, cancel := context.WithTimeout(ctx, o.dbTimeout)
	defer cancel()
	tag, err := conn.Exec(dctx, o.sql.cleanup, max(o.opts.Retention.Milliseconds(), 0), limit)
	if err != nil {
		return false, fmt.Errorf("outbox: clean up %s: %w", o.table.quoted, err)
	}
	return tag.RowsAffected() == int64(limit), nil
}

// backoff is an exponential backoff with jitter from 50ms up to a maximum.
type backoff struct {
	limit, cur time.Duration
}

func newBackoff(limit time.Duration) *backoff { return &backoff{limit: limit} }

func (b *backoff) reset() { b.cur = 0 }

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = 50 * time.Millisecond
	} else {
		b.cur = min(2*b.cur, b.limit)
	}
	return time.Duration(float64(b.cur) * (0.75 + 0.5*rand.Float64()))
}

// sleep waits d or until ctx is done; false when ctx is done.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
