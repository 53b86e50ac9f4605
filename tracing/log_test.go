package tracing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"go.opentelemetry.io/otel/trace"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/tracing"
)

// syncBuffer is a bytes.Buffer safe for the bus's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// records returns the JSON records logged so far.
func (s *syncBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
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
	var buf syncBuffer
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
		for _, r := range buf.records(t) {
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
	var buf syncBuffer
	logger := slog.New(tracing.NewLogHandler(slog.NewJSONHandler(&buf, nil))).With("a", 1).WithGroup("g")
	logger.InfoContext(context.Background(), "plain", "b", 2)
	r := buf.records(t)
	if len(r) != 1 || r[0]["trace_id"] != nil || r[0]["a"] != float64(1) {
		t.Errorf("records %v", r)
	}
}

// TestWatermillLogger: Watermill's logs land in the slog handler.
func TestWatermillLogger(t *testing.T) {
	var buf syncBuffer
	wl := tracing.WatermillLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	wl.With(watermill.LogFields{"topic": "x"}).Info("Subscribing", watermill.LogFields{"n": 3})
	r := buf.records(t)
	if len(r) != 1 || r[0]["msg"] != "Subscribing" || r[0]["topic"] != "x" || r[0]["n"] != float64(3) {
		t.Errorf("records %v", r)
	}
}
