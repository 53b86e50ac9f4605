package tracing

import (
	"context"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// producerTopic holds what the producer side precomputes per event name,
// so that a Fire with no SDK installed builds no attribute.
type producerTopic struct {
	spanName string
	dest     attribute.KeyValue
	attrs    []attribute.KeyValue
	add      []metric.AddOption
	record   []metric.RecordOption
}

func (t *Telemetry) producerTopic(topic string) *producerTopic {
	if p, ok := t.topics.Load(topic); ok {
		return p.(*producerTopic)
	}
	dest := semconv.MessagingDestinationName(topic)
	attrs := append(append([]attribute.KeyValue(nil), t.base...),
		dest,
		semconv.MessagingOperationTypeSend,
		semconv.MessagingOperationName("send"),
	)
	set := metric.WithAttributeSet(attribute.NewSet(t.system, dest, semconv.MessagingOperationName("send")))
	p := &producerTopic{
		spanName: "send " + topic,
		dest:     dest,
		attrs:    attrs,
		add:      []metric.AddOption{set},
		record:   []metric.RecordOption{set},
	}
	actual, _ := t.topics.LoadOrStore(topic, p)
	return actual.(*producerTopic)
}

// FireSpan is the producer side of one Fire, returned by StartFire. End it
// with the result of the publish. The zero FireSpan does nothing.
type FireSpan struct {
	t     *Telemetry
	p     *producerTopic
	ctx   context.Context
	span  trace.Span
	start time.Time
}

// StartFire starts the PRODUCER span "send {topic}" of an event about to
// be published, a child of the span in ctx, and injects the resulting
// context into msg's metadata through the propagator: W3C traceparent and
// tracestate, and baggage, with the usual propagators. It returns the
// context to publish with and the FireSpan to End.
func (t *Telemetry) StartFire(ctx context.Context, topic string, msg *message.Message) (context.Context, FireSpan) {
	if t.gate.off() {
		// No span can record: propagate the caller's context as a
		// non-recording span would have, without starting one.
		t.prop.Inject(ctx, propagation.MapCarrier(msg.Metadata))
		if !t.inst.sent.Enabled(ctx) && !t.inst.publishTime.Enabled(ctx) {
			return ctx, FireSpan{}
		}
		fs := FireSpan{t: t, p: t.producerTopic(topic), ctx: ctx}
		if t.inst.publishTime.Enabled(ctx) {
			fs.start = time.Now()
		}
		return ctx, fs
	}
	p := t.producerTopic(topic)
	ctx, span := t.tracer.Start(ctx, p.spanName, t.producer...)
	if span.IsRecording() {
		span.SetAttributes(append(p.attrs[:len(p.attrs):len(p.attrs)],
			semconv.MessagingMessageID(msg.UUID),
			semconv.MessagingMessageBodySize(len(msg.Payload)),
		)...)
	}
	t.prop.Inject(ctx, propagation.MapCarrier(msg.Metadata))
	fs := FireSpan{t: t, p: p, ctx: ctx, span: span}
	if t.inst.publishTime.Enabled(ctx) {
		fs.start = time.Now()
	}
	return ctx, fs
}

// End ends the span, recording err (the transport's refusal) with an error
// status, and counts the event as sent.
func (f FireSpan) End(err error) {
	if f.t == nil {
		return
	}
	add, record := f.p.add, f.p.record
	if err != nil {
		errType := semconv.ErrorType(err)
		if f.span != nil && f.span.IsRecording() {
			f.span.RecordError(err)
			f.span.SetStatus(codes.Error, err.Error())
			f.span.SetAttributes(errType)
		}
		set := metric.WithAttributeSet(attribute.NewSet(f.t.system, f.p.dest, semconv.MessagingOperationName("send"), errType))
		add, record = []metric.AddOption{set}, []metric.RecordOption{set}
	}
	if f.span != nil {
		f.span.End()
	}
	f.t.inst.sent.Add(f.ctx, 1, add...)
	if !f.start.IsZero() {
		f.t.inst.publishTime.Record(f.ctx, time.Since(f.start).Seconds(), record...)
	}
}
