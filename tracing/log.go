package tracing

import (
	"context"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
	"go.opentelemetry.io/otel/trace"
)

// NewLogHandler wraps h so that every record logged with a context that
// holds a valid span (a handler's ctx, for example) carries the attributes
// trace_id and span_id, to find the trace of a log line and the other way
// round. Records without a span pass through unchanged.
func NewLogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ inner slog.Handler }

func (l logHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return l.inner.Enabled(ctx, level)
}

func (l logHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return l.inner.Handle(ctx, r)
}

func (l logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return logHandler{l.inner.WithAttrs(attrs)}
}

func (l logHandler) WithGroup(name string) slog.Handler { return logHandler{l.inner.WithGroup(name)} }

// WatermillLogger returns a Watermill LoggerAdapter that writes to logger
// (slog.Default() when nil), so that Watermill's own logs (a router, a
// Watermill publisher or subscriber next to the bus) land in the same
// handler as the bus's. Watermill's trace level maps to slog.LevelDebug-4.
func WatermillLogger(logger *slog.Logger) watermill.LoggerAdapter {
	return watermill.NewSlogLogger(logger)
}
