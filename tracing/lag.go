package tracing

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/busline/busline/transports"
)

// lagTimeout bounds one Inspect call made for a collection.
const lagTimeout = 5 * time.Second

// lagObserver reports the lag and pending counts of the listeners' groups
// through observable gauges, asking the transport's Inspector once per
// collection.
type lagObserver struct {
	ins     transports.Inspector
	system  attribute.KeyValue
	lag     metric.Int64ObservableGauge
	pending metric.Int64ObservableGauge
	reg     metric.Registration

	mu     sync.Mutex
	groups map[string]lagGroup // by group
	closed bool
}

type lagGroup struct {
	topic string
	attrs metric.ObserveOption
}

func newLagObserver(m metric.Meter, ins transports.Inspector, system attribute.KeyValue) *lagObserver {
	o := &lagObserver{ins: ins, system: system, groups: map[string]lagGroup{}}
	var err error
	o.lag, err = m.Int64ObservableGauge(MetricLag, metric.WithUnit("{message}"),
		metric.WithDescription("Events of the group's event not yet delivered to the group, as the broker reports it."))
	if err != nil {
		return nil
	}
	o.pending, err = m.Int64ObservableGauge(MetricPending, metric.WithUnit("{message}"),
		metric.WithDescription("Events delivered to the group and not yet acknowledged, as the broker reports it."))
	if err != nil {
		return nil
	}
	o.reg, err = m.RegisterCallback(o.observe, o.lag, o.pending)
	if err != nil {
		return nil
	}
	return o
}

func (o *lagObserver) add(group, topic string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.groups[group] = lagGroup{topic: topic, attrs: metric.WithAttributeSet(attribute.NewSet(
		o.system, semconv.MessagingDestinationName(topic), semconv.MessagingConsumerGroupName(group)))}
}

func (o *lagObserver) close() error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil
	}
	o.closed = true
	o.mu.Unlock()
	return o.reg.Unregister()
}

// observe is the meter's callback. A broker that cannot report a count
// (transports.Unknown) or an inspection the transport does not support
// leaves the gauge without a value.
func (o *lagObserver) observe(ctx context.Context, obs metric.Observer) error {
	o.mu.Lock()
	if o.closed || len(o.groups) == 0 {
		o.mu.Unlock()
		return nil
	}
	groups := make(map[string]lagGroup, len(o.groups))
	var names, topics []string
	for g, lg := range o.groups {
		groups[g] = lg
		names = append(names, g)
		topics = append(topics, lg.topic)
	}
	o.mu.Unlock()
	sort.Strings(names)
	sort.Strings(topics)
	ctx, cancel := context.WithTimeout(ctx, lagTimeout)
	defer cancel()
	in, err := o.ins.Inspect(ctx, transports.InspectOptions{Events: topics, Groups: names})
	if errors.Is(err, transports.ErrUnsupported) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("busline: observe consumer lag: %w", err)
	}
	for _, gi := range in.Groups {
		lg, ok := groups[gi.Group]
		if !ok || (gi.Event != "" && gi.Event != lg.topic) {
			continue
		}
		if gi.Lag != transports.Unknown {
			obs.ObserveInt64(o.lag, gi.Lag, lg.attrs)
		}
		if gi.Pending != transports.Unknown {
			obs.ObserveInt64(o.pending, gi.Pending, lg.attrs)
		}
	}
	return nil
}
