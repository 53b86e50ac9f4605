package nats

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/transports"
)

// The server refuses a message above max_payload, headers included: the
// bus fires payloads of at most that less transports.MessageHeadroom, so
// that every event it takes can be stored as a dead letter too, and a
// batch with one payload too large sends none.
func TestPayloadsStayBelowTheServersLimit(t *testing.T) {
	raw := testURL(t, "", "")
	limit := openTransport(t, raw).MaxMessageBytes()
	if limit <= transports.MessageHeadroom {
		t.Fatalf("MaxMessageBytes = %d", limit)
	}
	b, err := bus.New(bus.Config{Service: "svc", Process: "p", Transport: raw, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ev := bus.NewEvent[string]("limits", "checked")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The largest event, failed with a reason longer than any kept (a
	// panic's stack), is dead-lettered, not redelivered forever.
	if err := bus.Listen(b, ev, "l", func(context.Context, bus.Delivery[string]) error {
		return bus.Permanent(errors.New(strings.Repeat("stack ", 4000)))
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// A JSON string: the payload is the text and its two quotes.
	most := limit - transports.MessageHeadroom
	if _, err := bus.Fire(ctx, b, ev, strings.Repeat("x", most-2)); err != nil {
		t.Fatalf("a payload of %d bytes: %v", most, err)
	}
	tr := openTransport(t, raw)
	waitFor(t, "the largest event dead-lettered", func() bool {
		dls, err := tr.DeadLetters(ctx, "svc-l", 10)
		return err == nil && len(dls) == 1 && len(dls[0].Reason) <= transports.MaxReasonBytes
	})
	_, err = bus.Fire(ctx, b, ev, strings.Repeat("x", most-1))
	if !errors.Is(err, bus.ErrPayloadTooLarge) || !strings.Contains(err.Error(), "the broker's limit") {
		t.Fatalf("a payload of %d bytes: %v; want ErrPayloadTooLarge naming the broker's limit", most+1, err)
	}
	ids, err := bus.FireBatch(ctx, b, ev, []string{"small", strings.Repeat("x", most-1)})
	if !errors.Is(err, bus.ErrPayloadTooLarge) || len(ids) != 0 {
		t.Fatalf("a batch with one payload too large: ids %v, %v; want none sent and ErrPayloadTooLarge", ids, err)
	}
}
