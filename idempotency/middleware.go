package idempotency

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
)

// Options configure Middleware.
type Options struct {
	// Store records processed keys. Required.
	Store Store
	// Group is the consumer group; keys are "{Group}:{event ID}". Required.
	Group string
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
}

// Key returns the idempotency key of an event in a group.
func Key(group, eventID string) string { return group + ":" + eventID }

// Middleware runs the handler only for a fresh claim of the event's key,
// commits the key after the handler succeeded and aborts it when it failed.
// A duplicate of a done event returns nil (it is acknowledged) without
// running the handler. When another consumer holds the key, it returns an
// error wrapping ErrHeld and asks the transport to redeliver after the
// holder's lease expires.
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
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			ctx := msg.Context()
			key := Key(opts.Group, msg.UUID)
			state, lease, err := opts.Store.Begin(ctx, key, opts.Lease)
			if err != nil {
				return nil, fmt.Errorf("idempotency: begin %s: %w", key, err)
			}
			switch state {
			case Done:
				opts.Logger.LogAttrs(ctx, slog.LevelDebug, "duplicate event skipped",
					slog.String("event_id", msg.UUID), slog.String("group", opts.Group))
				if opts.OnDuplicate != nil {
					opts.OnDuplicate(msg)
				}
				return nil, nil
			case Held:
				opts.Logger.LogAttrs(ctx, slog.LevelDebug, "event held by another consumer",
					slog.String("event_id", msg.UUID), slog.String("group", opts.Group),
					slog.Time("lease_expires", lease.Expires))
				if opts.OnConflict != nil {
					opts.OnConflict(msg)
				}
				info := transports.Info(msg)
				info.RetryAfter = max(time.Until(lease.Expires), 100*time.Millisecond)
				return nil, fmt.Errorf("%w (event %s, lease until %s)", ErrHeld, msg.UUID, lease.Expires.Format(time.RFC3339))
			}

			produced, herr := h(msg)
			// Finish the lease even when the handler's context is gone.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if herr != nil {
				if err := opts.Store.Abort(fctx, lease); err != nil {
					opts.Logger.LogAttrs(ctx, slog.LevelWarn, "idempotency abort failed; the retry waits for the lease to expire",
						slog.String("event_id", msg.UUID), slog.String("group", opts.Group), slog.Any("error", err))
				}
				return produced, herr
			}
			if err := opts.Store.Commit(fctx, lease, opts.Retention); err != nil {
				if errors.Is(err, ErrLeaseLost) {
					// The handler succeeded; another consumer took the key
					// after our lease ran out and may run it again.
					opts.Logger.LogAttrs(ctx, slog.LevelWarn, "idempotency lease lost before commit: handler ran longer than the lease",
						slog.String("event_id", msg.UUID), slog.String("group", opts.Group))
					return produced, nil
				}
				return produced, fmt.Errorf("idempotency: commit %s: %w", key, err)
			}
			return produced, nil
		}
	}
}
