package pgstore

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Cleanup deletes the rows whose lease or retention has expired, in
// batches of Options.CleanupBatch, skipping rows a transaction holds. It
// returns how many rows it deleted. Several processes may run it at once.
func (s *Store) Cleanup(ctx context.Context) (int64, error) {
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, s.sql.cleanup, s.opts.CleanupBatch)
		if err != nil {
			return total, fmt.Errorf("pgstore: clean up %s: %w", s.table, err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < int64(s.opts.CleanupBatch) {
			return total, nil
		}
		select {
		case <-ctx.Done():
			return total, ctx.Err()
		default:
		}
	}
}

// cleanupLoop runs Cleanup every CleanupInterval (±10% so that processes
// started together spread out) until Close.
func (s *Store) cleanupLoop() {
	defer s.wg.Done()
	for {
		d := time.Duration(float64(s.opts.CleanupInterval) * (0.9 + 0.2*rand.Float64()))
		t := time.NewTimer(d)
		select {
		case <-s.life.Done():
			t.Stop()
			return
		case <-t.C:
		}
		// Close cancels a pass in progress through s.life.
		ctx, cancel := context.WithTimeout(s.life, max(s.opts.CleanupInterval, time.Minute))
		n, err := s.Cleanup(ctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			s.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "idempotency clean-up failed", slog.String("table", s.table), slog.Any("error", err))
		} else if n > 0 {
			s.opts.Logger.LogAttrs(ctx, slog.LevelDebug, "idempotency clean-up", slog.String("table", s.table), slog.Int64("deleted", n))
		}
	}
}
