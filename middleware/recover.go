package middleware

import (
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/ThreeDotsLabs/watermill/message"
)

// ErrPanic matches (with errors.Is) the error Recover makes of a panic.
var ErrPanic = errors.New("handler panicked")

// Recover turns a panic in the handler into an error wrapping ErrPanic that
// carries the panic value and the stack, so the event is nacked (and
// retried or dead-lettered), never acked, and the process goes on.
func Recover(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) (out []*message.Message, err error) {
		defer func() {
			if r := recover(); r != nil {
				out, err = nil, fmt.Errorf("%w: %v\n%s", ErrPanic, r, debug.Stack())
			}
		}()
		return h(msg)
	}
}
