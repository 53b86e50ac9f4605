package outbox

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/busline/busline/tracing"
)

// Names of the relay's instruments.
const (
	// MetricPublished counts events the relay published, by event name.
	MetricPublished = "busline.outbox.published"
	// MetricPublishErrors counts publishes the transport refused, by event
	// name and error.type.
	MetricPublishErrors = "busline.outbox.publish_errors"
	// MetricDelay is the time from an event's row being written to the
	// relay reading it for publication, by the database's clock.
	MetricDelay = "busline.outbox.delay"
	// MetricLag is the age of the oldest unpublished row, reported by the
	// active relay at each collection.
	MetricLag = "busline.outbox.lag"
	// MetricPending is the number of unpublished rows, reported by the
	// active relay at each collection.
	MetricPending = "busline.outbox.pending"
	// MetricActive is 1 in the process whose relay holds the lock, 0 in
	// the others.
	MetricActive = "busline.outbox.relay.active"
)

// AttrTable is the attribute that names the outbox table.
const AttrTable = "busline.outbox.table"

// maxLinks bounds the links of one batch span to the fire spans.
const maxLinks = 128

type telemetry struct {
	o      *Outbox
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	table  attribute.KeyValue
	sent   metric.Int64Counter
	errors metric.Int64Counter
	delay  metric.Float64Histogram
	reg    metric.Registration
}

func newTelemetry(o *Outbox) *telemetry {
	tp, mp, prop := o.opts.TracerProvider, o.opts.MeterProvider, o.opts.Propagator
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if prop == nil {
		prop = otel.GetTextMapPropagator()
	}
	t := &telemetry{
		o:      o,
		tracer: tp.Tracer(tracing.ScopeName, trace.WithSchemaURL(semconv.SchemaURL)),
		prop:   prop,
		table:  attribute.String(AttrTable, o.table.quoted),
	}

	m := mp.Meter(tracing.ScopeName, metric.WithSchemaURL(semconv.SchemaURL))
	t.sent, _ = m.Int64Counter(MetricPublished, metric.WithUnit("{message}"),
		metric.WithDescription("Events the outbox relay published to the transport."))
	t.errors, _ = m.Int64Counter(MetricPublishErrors, metric.WithUnit("{error}"),
		metric.WithDescription("Publishes of the outbox relay that the transport refused; the event is tried again."))
	t.delay, _ = m.Float64Histogram(MetricDelay, metric.WithUnit("s"),
		metric.WithDescription("Time from an event's outbox row being written to the relay reading it for publication."),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
	lag, err1 := m.Float64ObservableGauge(MetricLag, metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest unpublished outbox row (reported by the active relay)."))
	pending, err2 := m.Int64ObservableGauge(MetricPending, metric.WithUnit("{message}"),
		metric.WithDescription("Unpublished outbox rows (reported by the active relay)."))
	active, err3 := m.Int64ObservableGauge(MetricActive, metric.WithUnit("1"),
		metric.WithDescription("1 when this process's outbox relay holds the relay lock and publishes, else 0."))
	if err1 == nil && err2 == nil && err3 == nil {
		t.reg, _ = m.RegisterCallback(func(ctx context.Context, obs metric.Observer) error {
			if !o.active.Load() {
				obs.ObserveInt64(active, 0, t.observeSet())
				return nil
			}
			obs.ObserveInt64(active, 1, t.observeSet())
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			var n int64
			var age float64
			if err := o.pool.QueryRow(ctx, o.sql.backlog).Scan(&n, &age); err != nil {
				return fmt.Errorf("outbox: observe the backlog of %s: %w", o.table.quoted, err)
			}
			obs.ObserveFloat64(lag, age, t.observeSet())
			obs.ObserveInt64(pending, n, t.observeSet())
			return nil
		}, lag, pending, active)
	}
	return t
}

func (t *telemetry) observeSet() metric.ObserveOption {
	return metric.WithAttributeSet(attribute.NewSet(t.table))
}

func (t *telemetry) close() {
	if t.reg != nil {
		_ = t.reg.Unregister()
	}
}

// batchSpan is the span of one relayed batch; the zero value does nothing.
type batchSpan struct{ span trace.Span }

// startBatch starts the PRODUCER span "publish outbox" of a batch, linked
// to the span of each event's Fire (the first maxLinks). The events keep
// their own trace context: a listener's span is a child of the Fire span,
// not of the relay's.
func (t *telemetry) startBatch(ctx context.Context, batch []row) (context.Context, batchSpan) {
	links := make([]trace.Link, 0, min(len(batch), maxLinks))
	for _, r := range batch[:min(len(batch), maxLinks)] {
		sc := trace.SpanContextFromContext(t.prop.Extract(context.Background(), propagation.MapCarrier(r.metadata)))
		if sc.IsValid() {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	ctx, span := t.tracer.Start(ctx, "publish outbox",
		trace.WithSpanKind(trace.SpanKindProducer), trace.WithLinks(links...),
		trace.WithAttributes(t.table, semconv.MessagingOperationTypeSend, semconv.MessagingBatchMessageCount(len(batch))))
	return ctx, batchSpan{span}
}

func (s batchSpan) end(published int, pubErr, dbErr error) {
	if s.span == nil {
		return
	}
	s.span.SetAttributes(attribute.Int("busline.outbox.published", published))
	for _, err := range []error{pubErr, dbErr} {
		if err != nil {
			s.span.RecordError(err)
			s.span.SetStatus(codes.Error, err.Error())
		}
	}
	s.span.End()
}

func (t *telemetry) published(ctx context.Context, r row) {
	set := metric.WithAttributeSet(attribute.NewSet(t.table, semconv.MessagingDestinationName(r.event)))
	t.sent.Add(ctx, 1, set)
	t.delay.Record(ctx, r.age, set)
}

func (t *telemetry) failed(ctx context.Context, event string, err error) {
	t.errors.Add(ctx, 1, metric.WithAttributeSet(attribute.NewSet(t.table, semconv.MessagingDestinationName(event), semconv.ErrorType(err))))
}
