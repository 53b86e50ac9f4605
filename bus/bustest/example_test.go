package bustest_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/bus/bustest"
)

type Signup struct {
	Email string `json:"email"`
}

var SignedUp = bus.NewEvent[Signup]("accounts", "signed_up")

// A test of a handler: fire, wait until the bus is idle (no sleeps), then
// assert on what the handler did and what the bus recorded.
func Example() {
	// In a real test this is the *testing.T of the test function, whose
	// end closes the bus; this stand-in runs no cleanup, so close it here.
	t := &testing.T{}

	b := bustest.New(t, bus.Config{Service: "mailer"})
	defer b.Close()
	var sent []string
	err := bus.Listen(b.Bus, SignedUp, "send-welcome", func(ctx context.Context, d bus.Delivery[Signup]) error {
		sent = append(sent, d.Payload.Email)
		return nil
	}, bus.WithConcurrency(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	b.Start(t)
	if _, err := bus.Fire(context.Background(), b.Bus, SignedUp, Signup{Email: "ada@example.com"}); err != nil {
		fmt.Println(err)
		return
	}
	b.MustWaitIdle(t)

	fmt.Println(sent)
	fmt.Println(len(b.Fired(SignedUp.Name())), len(b.Handled("mailer-send-welcome")))
	// Output:
	// [ada@example.com]
	// 1 1
}

// The assertions take the event value and the listener name, so a renamed
// event or service needs no change in the test.
func ExampleAssertFired() {
	t := &testing.T{} // a real test's t; see Example
	b := bustest.New(t, bus.Config{Service: "mailer"})
	defer b.Close()
	if err := bus.Listen(b.Bus, SignedUp, "send-welcome", func(context.Context, bus.Delivery[Signup]) error { return nil }); err != nil {
		fmt.Println(err)
		return
	}
	b.Start(t)
	if _, err := bus.Fire(context.Background(), b.Bus, SignedUp, Signup{Email: "ada@example.com"}); err != nil {
		fmt.Println(err)
		return
	}
	b.MustWaitIdle(t)

	bustest.AssertFired(t, b, SignedUp, 1)
	b.AssertSucceeded(t, b.Group("send-welcome"), 1)
	fmt.Println(b.Group("send-welcome"), bustest.FiredPayloads(t, b, SignedUp), t.Failed())
	// Output: mailer-send-welcome [{ada@example.com}] false
}
