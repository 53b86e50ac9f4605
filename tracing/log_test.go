package tracing_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"go.opentelemetry.io/otel/trace"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/internal/syncbuf"
	"github.com/busline/busline/tracing"
)

// records returns the JSON records logged to buf so far.
func records(t *testing.T, buf *syncbuf.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		out = append(out, m)
	}
	return out
}

// TestDeliveryLog: each delivery attempt is logged at debug with the
// event's attributes, the process (from the bus's logger) and, through
// NewLogHandler, the trace of the handler's context.
func TestDeliveryLog(t *testing.T) {
	o := newOtel(t)
	var buf syncbuf.Buffer
	logger := slog.New(tracing.NewLogHandler(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	got := make(chan handled, 1)
	var handlerTrace trace.SpanContext
	b := startBus(t, o.config(broker{url: "memory://"}, logger), func(b *bus.Bus) {
		err := bus.Listen(b, happened, "audit", func(ctx context.Context, d bus.Delivery[Payload]) error {
			logger.InfoContext(ctx, "handling", "n", d.Payload.N)
			handlerTrace = trace.SpanContextFromContext(ctx)
			got <- handled{id: d.ID}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	id, _ := fireTraced(t, o, b)
	receive(t, got)
	var processed, handling map[string]any
	waitFor(t, func() bool {
		for _, r := range records(t, &buf) {
			switch r["msg"] {
			case "event processed":
				processed = r
			case "handling":
				handling = r
			}
		}
		return processed != nil && handling != nil
	}, "the delivery's log records")
	want := map[string]any{
		"event_id": id, "event": "tracing_test.happened", "group": "tt-audit", "process": "p1",
		"service": "tt", "attempt": float64(1), "outcome": "ok",
		"trace_id": handlerTrace.TraceID().String(), "span_id": handlerTrace.SpanID().String(),
	}
	for k, v := range want {
		if processed[k] != v {
			t.Errorf("event processed: %s = %v, want %v (record %v)", k, processed[k], v, processed)
		}
	}
	if handling["trace_id"] != handlerTrace.TraceID().String() || handling["span_id"] != handlerTrace.SpanID().String() {
		t.Errorf("handler's record lacks the trace: %v", handling)
	}
}

// TestLogHandlerWithoutSpan: records without a span pass unchanged.
func TestLogHandlerWithoutSpan(t *testing.T) {
	var buf syncbuf.Buffer
	logger := slog.New(tracing.NewLogHandler(slog.NewJSONHandler(&buf, nil))).With("a", 1).WithGroup("g")
	logger.InfoContext(context.Background(), "plain", "b", 2)
	r := records(t, &buf)
	if len(r) != 1 || r[0]["trace_id"] != nil || r[0]["a"] != float64(1) {
		t.Errorf("records %v", r)
	}
}

// TestWatermillLogger: Watermill's logs land in the slog handler.
func TestWatermillLogger(t *testing.T) {
	var buf syncbuf.Buffer
	wl := tracing.WatermillLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	wl.With(watermill.LogFields{"topic": "x"}).Info("Subscribing", watermill.LogFields{"n": 3})
	r := records(t, &buf)
	if len(r) != 1 || r[0]["msg"] != "Subscribing" || r[0]["topic"] != "x" || r[0]["n"] != float64(3) {
		t.Errorf("records %v", r)
	}
}
