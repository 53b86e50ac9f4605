package tracing

import (
	"log/slog"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/busline/busline/transports"
)

// ScopeName is the instrumentation scope of Busline's tracer and meter.
const ScopeName = "github.com/busline/busline"

// Config selects the providers and names of a Telemetry. Zero fields use
// the OpenTelemetry globals, looked up once by New; the globals delegate to
// providers installed later, so New may run before the SDK is set up.
type Config struct {
	// TracerProvider makes the spans. Default otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// MeterProvider makes the instruments. Default otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Propagator writes the trace context into event metadata and reads it
	// back. Default otel.GetTextMapPropagator(), a no-op until the program
	// sets one.
	Propagator propagation.TextMapPropagator
	// System is the messaging.system attribute: "memory", "redis",
	// "rabbitmq", "nats" (see SystemForScheme).
	System string
	// Process is the messaging.client.id attribute: the bus's process name.
	Process string
	// Link starts each consumer span as the root of a new trace with a link
	// to the producer span, instead of as its child. Use it when one event
	// fans out to many listeners whose work should be traces of their own.
	Link bool
	// Logger receives a debug record per delivery attempt. Default slog.Default().
	Logger *slog.Logger
	// Inspector, when set, is asked for the lag and pending counts of the
	// listeners' groups each time the meter provider collects.
	Inspector transports.Inspector
}

// Telemetry instruments one bus: the producer side (StartFire) and one
// Middleware per listener. It is safe for concurrent use. Close stops the
// lag observation.
type Telemetry struct {
	tracer   trace.Tracer
	gate     spanGate
	prop     propagation.TextMapPropagator
	base     []attribute.KeyValue // messaging.system, messaging.client.id
	system   attribute.KeyValue
	link     bool
	log      *slog.Logger
	inst     *instruments
	lag      *lagObserver
	topics   sync.Map // event name -> *producerTopic
	producer []trace.SpanStartOption
}

// New makes a Telemetry from cfg.
func New(cfg Config) *Telemetry {
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	if cfg.MeterProvider == nil {
		cfg.MeterProvider = otel.GetMeterProvider()
	}
	if cfg.Propagator == nil {
		cfg.Propagator = otel.GetTextMapPropagator()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	t := &Telemetry{
		tracer:   cfg.TracerProvider.Tracer(ScopeName, trace.WithSchemaURL(semconv.SchemaURL)),
		gate:     newSpanGate(cfg.TracerProvider),
		prop:     cfg.Propagator,
		system:   semconv.MessagingSystemKey.String(cfg.System),
		link:     cfg.Link,
		log:      cfg.Logger,
		producer: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer)},
	}
	t.base = []attribute.KeyValue{t.system}
	if cfg.Process != "" {
		t.base = append(t.base, semconv.MessagingClientID(cfg.Process))
	}
	meter := cfg.MeterProvider.Meter(ScopeName, metric.WithSchemaURL(semconv.SchemaURL))
	t.inst = newInstruments(meter)
	if cfg.Inspector != nil {
		t.lag = newLagObserver(meter, cfg.Inspector, t.system)
	}
	return t
}

// Close stops observing consumer lag. Spans and instruments keep working.
func (t *Telemetry) Close() error {
	if t.lag == nil {
		return nil
	}
	return t.lag.close()
}

// SystemForScheme returns the messaging.system value for a transport URL
// scheme: "memory", "redis" (redis, rediss), "rabbitmq" (amqp, amqps),
// "nats" (nats, and tls, the NATS transport's TLS scheme); any other
// scheme is returned as it is.
func SystemForScheme(scheme string) string {
	switch scheme {
	case "redis", "rediss":
		return "redis"
	case "amqp", "amqps":
		return "rabbitmq"
	case "nats", "tls": // tls:// is the NATS transport over TLS
		return "nats"
	}
	return scheme
}
