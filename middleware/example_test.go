package middleware_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/middleware"
)

// Chain composes Watermill handler middleware, outermost first. Here a
// panic becomes an error, and a failing handler is tried three times in
// process before the error is returned for a redelivery.
func ExampleChain() {
	calls := 0
	handler := func(msg *message.Message) ([]*message.Message, error) {
		calls++
		if calls < 3 {
			return nil, errors.New("flaky downstream")
		}
		return nil, nil
	}
	h := middleware.Chain(
		middleware.Recover,
		middleware.Retry(middleware.RetryPolicy{Tries: 3, InitialInterval: time.Millisecond, Jitter: -1}),
		middleware.Timeout(time.Second),
	)(handler)

	_, err := h(message.NewMessage("event-id", []byte(`{}`)))
	fmt.Println(calls, err)
	// Output: 3 <nil>
}

// Recover turns a panic into an error that matches ErrPanic, so the event
// is nacked rather than the process crashing.
func ExampleRecover() {
	h := middleware.Recover(func(msg *message.Message) ([]*message.Message, error) {
		panic("nil map")
	})
	_, err := h(message.NewMessage("event-id", nil))
	fmt.Println(errors.Is(err, middleware.ErrPanic))
	// Output: true
}

// An error marked Permanent is not retried: Retry returns it at once and
// DeadLetter dead-letters the event.
func ExamplePermanent() {
	calls := 0
	h := middleware.Retry(middleware.RetryPolicy{Tries: 5, InitialInterval: time.Millisecond})(
		func(msg *message.Message) ([]*message.Message, error) {
			calls++
			return nil, middleware.Permanent(errors.New("invalid order"))
		})
	_, err := h(message.NewMessage("event-id", nil))
	fmt.Println(calls, middleware.IsPermanent(err))
	// Output: 1 true
}
