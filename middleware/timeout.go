package middleware

import (
	"context"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Timeout gives each handler call a context that is cancelled after d, and
// restores the message's original context afterwards. A handler that
// ignores its context is not stopped; the deadline only tells it to stop.
// d <= 0 returns a middleware that does nothing.
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
			return h(msg)
		}
	}
}
