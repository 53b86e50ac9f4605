package middleware

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Timeout gives each handler call a context that is cancelled after d, and
// restores the message's original context afterwards. A handler that
// ignores its context is not stopped; the deadline only tells it to stop.
// d <= 0 returns a middleware that does nothing. A failure that matches
// context.DeadlineExceeded once d passed says that the handler timed out
// after d, and still matches what the handler returned.
func Timeout(d time.Duration) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		if d <= 0 {
			return h
		}
		return func(msg *message.Message) ([]*message.Message, error) {
			orig := msg.Context()
			ctx, cancel := context.WithTimeout(orig, d)
			msg.SetContext(ctx)
			defer func() {
				cancel()
				msg.SetContext(orig)
			}()
			out, err := h(msg)
			if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil && orig.Err() == nil {
				// The dead letter's reason, and the log, say which deadline.
				err = &timeoutError{d: d, err: err}
			}
			return out, err
		}
	}
}

// timeoutError is a handler's failure once its Timeout passed: it says so,
// and still matches context.DeadlineExceeded and what the handler returned.
type timeoutError struct {
	d   time.Duration
	err error
}

func (e *timeoutError) Error() string {
	return fmt.Sprintf("handler timed out after %s (the listener's Timeout): %v", e.d, e.err)
}

func (e *timeoutError) Unwrap() error { return e.err }
