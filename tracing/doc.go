// Package tracing connects Busline to OpenTelemetry: it carries the trace
// context of Fire through the broker in W3C traceparent/tracestate metadata
// and starts a CONSUMER span per delivery attempt.
//
// This is the slot of the default chain; spans and metrics are filled in by
// the observability work (see docs/). Until then Middleware passes through
// and Inject adds nothing.
package tracing
