package tracing

import (
	"go.opentelemetry.io/otel/metric"
)

// Names of the instruments. The messaging.* ones follow the OpenTelemetry
// messaging semantic conventions; the busline.* ones are Busline's own.
const (
	MetricSent        = "messaging.client.sent.messages"
	MetricPublishTime = "messaging.client.operation.duration"
	MetricConsumed    = "messaging.client.consumed.messages"
	MetricProcessTime = "messaging.process.duration"
	MetricRetries     = "busline.consumer.retries"
	MetricDeadLetters = "busline.consumer.dead_letters"
	MetricLag         = "busline.consumer.lag"
	MetricPending     = "busline.consumer.pending"
)

// AttrOutcome is the attribute that holds a delivery's transports.Outcome.
const AttrOutcome = "busline.outcome"

// durationBuckets are the bucket boundaries, in seconds, the messaging
// conventions advise for operation durations.
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// instruments are the synchronous instruments of one Telemetry. An
// instrument the meter refuses (a bad name, which cannot happen with the
// constants above) is a no-op.
type instruments struct {
	sent        metric.Int64Counter
	publishTime metric.Float64Histogram
	consumed    metric.Int64Counter
	processTime metric.Float64Histogram
	retries     metric.Int64Counter
	deadLetters metric.Int64Counter
}

func newInstruments(m metric.Meter) *instruments {
	i := &instruments{}
	i.sent, _ = m.Int64Counter(MetricSent, metric.WithUnit("{message}"),
		metric.WithDescription("Events fired: Fire calls, by event and error.type when the transport refused the event."))
	i.publishTime, _ = m.Float64Histogram(MetricPublishTime, metric.WithUnit("s"),
		metric.WithDescription("Time Fire waited for the transport to accept the event durably."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	i.consumed, _ = m.Int64Counter(MetricConsumed, metric.WithUnit("{message}"),
		metric.WithDescription("Delivery attempts processed by a listener, by outcome (ok, retried, dead_lettered, duplicate_skipped)."))
	i.processTime, _ = m.Float64Histogram(MetricProcessTime, metric.WithUnit("s"),
		metric.WithDescription("Time a delivery attempt spent in the listener's middleware chain and handler, by outcome."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	i.retries, _ = m.Int64Counter(MetricRetries, metric.WithUnit("{retry}"),
		metric.WithDescription("In-process retries of failed handler calls (redeliveries are counted as consumed with outcome retried)."))
	i.deadLetters, _ = m.Int64Counter(MetricDeadLetters, metric.WithUnit("{message}"),
		metric.WithDescription("Events sent to the group's dead-letter destination."))
	return i
}
