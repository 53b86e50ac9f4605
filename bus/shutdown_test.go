package bus_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/internal/syncbuf"
)

// A handler that ignores its context and returns nil after the shutdown
// timeout is not acknowledged (the subscriptions are closed): the log
// says so rather than only that the event was processed.
func TestHandlerReturningAfterShutdownTimeoutIsLogged(t *testing.T) {
	var logs syncbuf.Buffer
	b, err := bus.New(bus.Config{Service: "s", Transport: "memory://", ShutdownTimeout: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	ev := bus.NewEvent[int]("shutdown", "late")
	if err := bus.Listen(b, ev, "stubborn", func(context.Context, bus.Delivery[int]) error {
		close(started)
		<-release // ignores its context
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.Fire(ctx, b, ev, 1); err != nil {
		t.Fatal(err)
	}
	<-started
	_ = b.Close() // gives up on the handler after ShutdownTimeout and one more second
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "returned after the shutdown timeout") {
		if time.Now().After(deadline) {
			t.Fatalf("no warning of the unacknowledged event; logs:\n%s", logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
