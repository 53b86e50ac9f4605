package idempotency

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Instrumentation scope of the counters recorded by Middleware.
const meterName = "github.com/busline/busline/idempotency"

// metrics counts what the middleware decided, per consumer group, through
// Options.MeterProvider or the global meter provider (a no-op until the
// program installs one).
type metrics struct {
	attrs                            metric.MeasurementOption
	duplicates, conflicts, lostLease metric.Int64Counter
}

func newMetrics(group string, mp metric.MeterProvider) *metrics {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	meter := mp.Meter(meterName)
	m := &metrics{attrs: metric.WithAttributeSet(attribute.NewSet(attribute.String("messaging.consumer.group.name", group)))}
	// Errors only mean a bad instrument name; the returned counter is then a no-op.
	m.duplicates, _ = meter.Int64Counter("busline.idempotency.duplicates",
		metric.WithDescription("Duplicate deliveries of done events acknowledged without running the handler."),
		metric.WithUnit("{event}"))
	m.conflicts, _ = meter.Int64Counter("busline.idempotency.conflicts",
		metric.WithDescription("Deliveries put back because another consumer held the event's lease."),
		metric.WithUnit("{event}"))
	m.lostLease, _ = meter.Int64Counter("busline.idempotency.lease_lost",
		metric.WithDescription("Handlers that finished after their lease had been taken over."),
		metric.WithUnit("{event}"))
	return m
}

func (m *metrics) duplicate(ctx context.Context) { m.duplicates.Add(ctx, 1, m.attrs) }
func (m *metrics) conflict(ctx context.Context)  { m.conflicts.Add(ctx, 1, m.attrs) }
func (m *metrics) leaseLost(ctx context.Context) { m.lostLease.Add(ctx, 1, m.attrs) }
