// Package tracing connects Busline to OpenTelemetry and log/slog.
//
// A Telemetry, made by New from the providers of bus.Config (the OTel
// globals by default), instruments both sides of the broker:
//
//   - StartFire starts a PRODUCER span "send {event}" around Fire and
//     injects its context (W3C traceparent/tracestate, baggage: whatever the
//     TextMapPropagator writes) into the event's metadata.
//   - Middleware, the outermost middleware of every listener, extracts that
//     context and starts one CONSUMER span "process {event}" per delivery
//     attempt, a child of the producer span (or, with Config.Link, the root
//     of a new trace with a link to it). The span carries the OpenTelemetry
//     messaging attributes, the attempt number, the in-process retries and
//     the outcome: ok, retried, dead_lettered or duplicate_skipped.
//   - Metrics through the OTel metric API: events sent and consumed (by
//     outcome), publish and processing durations, in-process retries, dead
//     letters, and consumer lag and pending counts where the transport
//     implements transports.Inspector. docs/observability.md lists every
//     name, unit and attribute.
//   - Logs: a debug record per delivery attempt with event_id, event,
//     group, attempt and outcome; NewLogHandler adds trace_id and span_id to
//     records logged with a traced context; WatermillLogger routes
//     Watermill's own logs to a slog.Logger.
//
// With no OpenTelemetry SDK installed the globals are no-ops: spans are not
// recording, so no attribute is built, and instruments drop measurements.
// Note that the global TextMapPropagator is a no-op too: a program that
// wants traces to cross the broker sets one, for example
//
//	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(
//		propagation.TraceContext{}, propagation.Baggage{}))
package tracing
