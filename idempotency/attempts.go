package idempotency

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Attempts scopes each handler call to its own savepoint when Middleware
// runs the handler inside a TxStore transaction: a call that fails has its
// writes undone before the next in-process retry, so that only the
// successful call's writes commit with the done mark. It must sit inside
// the retry middleware (the bus's chain has it there already); outside a
// transaction, or when the store's Tx cannot scope calls, it does nothing.
// Nested Attempts scopes collapse into the outermost one.
func Attempts() message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) (out []*message.Message, err error) {
			s := sessionFrom(msg.Context())
			if s == nil || s.inScope {
				return h(msg)
			}
			at, ok := s.tx.(AttemptTx)
			if !ok {
				return h(msg)
			}
			end, err := at.BeginAttempt(msg.Context())
			if err != nil {
				return nil, fmt.Errorf("idempotency: begin attempt of event %s: %w", msg.UUID, err)
			}
			s.inScope = true
			s.attempts++
			finished := false
			defer func() {
				s.inScope = false
				if finished {
					return
				}
				// The handler panicked: undo its writes, let the panic go on.
				ctx, cancel := finishContext(msg.Context())
				defer cancel()
				_ = end(ctx, true)
			}()
			out, err = h(msg)
			finished = true
			ctx, cancel := finishContext(msg.Context())
			defer cancel()
			if eerr := end(ctx, err != nil); eerr != nil {
				if err != nil {
					return out, errors.Join(err, fmt.Errorf("idempotency: undo attempt of event %s: %w", msg.UUID, eerr))
				}
				return out, fmt.Errorf("idempotency: close attempt of event %s: %w", msg.UUID, eerr)
			}
			return out, err
		}
	}
}

// finishContext is for work that must happen even when the handler's
// context is done: committing, aborting, rolling back.
// A live context is used as it is (no timer per event on the hot path).
func finishContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx.Err() == nil {
		return ctx, func() {}
	}
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}
