package middleware

import "github.com/ThreeDotsLabs/watermill/message"

// Chain composes middleware, outermost first: Chain(a, b)(h) is a(b(h)).
// Nil entries are skipped.
func Chain(ms ...message.HandlerMiddleware) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		for i := len(ms) - 1; i >= 0; i-- {
			if ms[i] != nil {
				h = ms[i](h)
			}
		}
		return h
	}
}
