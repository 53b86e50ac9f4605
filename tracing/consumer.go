package tracing

import (
	"context"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/busline/busline/transports"
)

// Attribute keys of the consumer span that the conventions do not define.
const (
	// AttrAttempt is the delivery attempt (1 on the first delivery).
	AttrAttempt = "busline.attempt"
	// AttrRetries is the number of in-process retries in the attempt.
	AttrRetries = "busline.retries"
)

// outcomes indexes the per-outcome attribute sets of a listener.
var outcomes = [...]transports.Outcome{
	transports.OutcomeOK, transports.OutcomeRetried,
	transports.OutcomeDeadLettered, transports.OutcomeDuplicateSkipped,
}

func outcomeIndex(o transports.Outcome) int {
	for i, v := range outcomes {
		if v == o {
			return i
		}
	}
	return 0
}

// listener holds what one listener's middleware precomputes.
type listener struct {
	t          *Telemetry
	group      string
	topic      string
	spanName   string
	attrs      []attribute.KeyValue
	spanOpts   []trace.SpanStartOption
	base       []metric.AddOption
	add        [len(outcomes)][]metric.AddOption
	record     [len(outcomes)][]metric.RecordOption
	outcomeKVs [len(outcomes)]attribute.KeyValue
}

// Middleware returns the tracing middleware of the listener of group on
// topic, the outermost of the chain. Per delivery attempt it:
//
//   - extracts the producer's context from the metadata and starts the
//     CONSUMER span "process {topic}" (a child of the producer span, or with
//     Config.Link a new trace linked to it), puts it in the message context
//     for the inner middleware and the handler, and ends it when the chain
//     returns, with the outcome, the error and an error status when the
//     attempt failed or the event was dead-lettered;
//   - counts the attempt by outcome and records its duration;
//   - logs it at debug level.
//
// The outcome is transports.OutcomeRetried when the chain returned an
// error, the DeliveryInfo.Outcome an inner middleware set when it returned
// nil (dead-lettered, duplicate skipped), and OutcomeOK otherwise. The
// listener is also added to the lag observation when Config.Inspector is set.
func (t *Telemetry) Middleware(group, topic string) message.HandlerMiddleware {
	l := t.newListener(group, topic)
	if t.lag != nil {
		t.lag.add(group, topic)
	}
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			return l.handle(h, msg)
		}
	}
}

func (t *Telemetry) newListener(group, topic string) *listener {
	dest := semconv.MessagingDestinationName(topic)
	grp := semconv.MessagingConsumerGroupName(group)
	op := semconv.MessagingOperationName("process")
	l := &listener{
		t: t, group: group, topic: topic, spanName: "process " + topic,
		attrs: append(append([]attribute.KeyValue(nil), t.base...),
			dest, grp, semconv.MessagingOperationTypeProcess, op),
		spanOpts: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)},
		base:     []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(t.system, dest, grp))},
	}
	for i, o := range outcomes {
		kv := attribute.String(AttrOutcome, string(o))
		set := metric.WithAttributeSet(attribute.NewSet(t.system, dest, grp, op, kv))
		l.outcomeKVs[i] = kv
		l.add[i] = []metric.AddOption{set}
		l.record[i] = []metric.RecordOption{set}
	}
	return l
}

func (l *listener) handle(h message.HandlerFunc, msg *message.Message) ([]*message.Message, error) {
	orig := msg.Context()
	info := transports.Info(msg)
	ctx := l.t.prop.Extract(orig, propagation.MapCarrier(msg.Metadata))
	var span trace.Span
	if !l.t.gate.off() {
		ctx, span = l.start(ctx)
	}
	recording := span != nil && span.IsRecording()
	if recording {
		span.SetAttributes(append(l.attrs[:len(l.attrs):len(l.attrs)],
			semconv.MessagingMessageID(msg.UUID),
			semconv.MessagingMessageBodySize(len(msg.Payload)),
			attribute.Int(AttrAttempt, info.Attempt),
		)...)
	}
	logging := l.t.log.Enabled(ctx, slog.LevelDebug)
	var start time.Time
	if recording || logging || l.t.inst.processTime.Enabled(ctx) {
		start = time.Now()
	}

	msg.SetContext(ctx)
	out, err := h(msg)
	msg.SetContext(orig)

	outcome := transports.OutcomeOK
	switch {
	case err != nil:
		outcome = transports.OutcomeRetried
	case info.Outcome != "":
		outcome = info.Outcome
	}
	i := outcomeIndex(outcome)
	if recording {
		span.SetAttributes(l.outcomeKVs[i], attribute.Int(AttrRetries, info.Retries))
		switch {
		case err != nil:
			span.RecordError(err)
			span.SetAttributes(semconv.ErrorType(err))
			span.SetStatus(codes.Error, err.Error())
		case outcome == transports.OutcomeDeadLettered:
			span.SetStatus(codes.Error, "dead-lettered")
		}
	}
	if span != nil {
		span.End()
	}

	inst := l.t.inst
	inst.consumed.Add(ctx, 1, l.add[i]...)
	var elapsed time.Duration
	if !start.IsZero() {
		elapsed = time.Since(start)
		inst.processTime.Record(ctx, elapsed.Seconds(), l.record[i]...)
	}
	if info.Retries > 0 {
		inst.retries.Add(ctx, int64(info.Retries), l.base...)
	}
	if outcome == transports.OutcomeDeadLettered {
		inst.deadLetters.Add(ctx, 1, l.base...)
	}
	if logging {
		l.logAttempt(ctx, msg, info, outcome, elapsed, err)
	}
	return out, err
}

// start starts the CONSUMER span of a delivery in ctx, which holds the
// extracted producer context: its child, or in link mode the root of a new
// trace linked to it.
func (l *listener) start(ctx context.Context) (context.Context, trace.Span) {
	opts := l.spanOpts
	if l.t.link {
		if remote := trace.SpanContextFromContext(ctx); remote.IsValid() {
			opts = []trace.SpanStartOption{
				trace.WithSpanKind(trace.SpanKindConsumer), trace.WithNewRoot(),
				trace.WithLinks(trace.Link{SpanContext: remote}),
			}
		}
	}
	return l.t.tracer.Start(ctx, l.spanName, opts...)
}

// logAttempt writes the debug record of one delivery attempt.
func (l *listener) logAttempt(ctx context.Context, msg *message.Message, info *transports.DeliveryInfo, outcome transports.Outcome, elapsed time.Duration, err error) {
	attrs := make([]slog.Attr, 0, 10)
	attrs = append(attrs,
		slog.String("event_id", msg.UUID), slog.String("event", l.topic), slog.String("group", l.group),
		slog.Int("attempt", info.Attempt), slog.String("outcome", string(outcome)),
		slog.Duration("duration", elapsed))
	if info.Retries > 0 {
		attrs = append(attrs, slog.Int("retries", info.Retries))
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	if err != nil {
		attrs = append(attrs, slog.Any("error", err))
	}
	l.t.log.LogAttrs(ctx, slog.LevelDebug, "event processed", attrs...)
}
