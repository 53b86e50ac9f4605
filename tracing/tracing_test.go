package tracing_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/tracing"
)

// handled is what a test handler saw of one delivery.
type handled struct {
	id      string
	attempt int
	span    trace.SpanContext
	member  string // the "tenant" baggage member
}

func record(ch chan<- handled) bus.Handler[Payload] {
	return func(ctx context.Context, d bus.Delivery[Payload]) error {
		ch <- handled{id: d.ID, attempt: d.Attempt, span: trace.SpanContextFromContext(ctx),
			member: baggage.FromContext(ctx).Member("tenant").Value()}
		return nil
	}
}

func receive(t *testing.T, ch <-chan handled) handled {
	t.Helper()
	select {
	case h := <-ch:
		return h
	case <-time.After(20 * time.Second):
		t.Fatal("timed out waiting for the handler")
		return handled{}
	}
}

// fireTraced fires one event inside a span "request" of o's tracer, with a
// baggage member, and returns the event ID and the request span's context.
func fireTraced(t *testing.T, o *otelSetup, b *bus.Bus, opts ...bus.FireOption) (string, trace.SpanContext) {
	t.Helper()
	m, _ := baggage.NewMember("tenant", "acme")
	bg, _ := baggage.New(m)
	ctx := baggage.ContextWithBaggage(context.Background(), bg)
	ctx, span := o.tp.Tracer("test").Start(ctx, "request")
	defer span.End()
	id, err := bus.Fire(ctx, b, happened, Payload{N: 1}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return id, span.SpanContext()
}

// TestPropagation: the listener's span continues the trace of Fire, as a
// child of the PRODUCER span, with the messaging attributes; the handler
// sees that span and the baggage.
func TestPropagation(t *testing.T) {
	eachBroker(t, func(t *testing.T, br broker) {
		o := newOtel(t)
		got := make(chan handled, 1)
		b := startBus(t, o.config(br, nil), func(b *bus.Bus) {
			if err := bus.Listen(b, happened, "audit", record(got)); err != nil {
				t.Fatal(err)
			}
		})
		id, request := fireTraced(t, o, b)
		h := receive(t, got)

		prod := o.waitSpans(t, 1, producerSpan(id))[0]
		cons := o.waitSpans(t, 1, consumerSpans(id))[0]
		if prod.Name() != "send tracing_test.happened" || cons.Name() != "process tracing_test.happened" {
			t.Errorf("span names %q, %q", prod.Name(), cons.Name())
		}
		if prod.Parent().SpanID() != request.SpanID() || prod.SpanContext().TraceID() != request.TraceID() {
			t.Errorf("producer span is not a child of the request span")
		}
		if cons.SpanContext().TraceID() != request.TraceID() {
			t.Errorf("consumer span in trace %s, want the firing trace %s", cons.SpanContext().TraceID(), request.TraceID())
		}
		if cons.Parent().SpanID() != prod.SpanContext().SpanID() || !cons.Parent().IsRemote() {
			t.Errorf("consumer span parent %s, want the remote producer span %s", cons.Parent().SpanID(), prod.SpanContext().SpanID())
		}
		if h.span.SpanID() != cons.SpanContext().SpanID() {
			t.Errorf("handler context holds span %s, want the consumer span %s", h.span.SpanID(), cons.SpanContext().SpanID())
		}
		if h.member != "acme" {
			t.Errorf("baggage member tenant = %q in the handler, want acme", h.member)
		}
		want := map[string]attribute.Value{
			"messaging.system":              attribute.StringValue(br.system),
			"messaging.destination.name":    attribute.StringValue("tracing_test.happened"),
			"messaging.consumer.group.name": attribute.StringValue("tt-audit"),
			"messaging.message.id":          attribute.StringValue(id),
			"messaging.operation.type":      attribute.StringValue("process"),
			"messaging.operation.name":      attribute.StringValue("process"),
			"messaging.client.id":           attribute.StringValue("p1"),
			"messaging.message.body.size":   attribute.IntValue(len(`{"n":1}`)),
			tracing.AttrAttempt:             attribute.IntValue(1),
			tracing.AttrOutcome:             attribute.StringValue("ok"),
			tracing.AttrRetries:             attribute.IntValue(0),
		}
		for k, v := range want {
			if got := attr(cons.Attributes(), k); got != v {
				t.Errorf("consumer %s = %v, want %v", k, got.Emit(), v.Emit())
			}
		}
		for k, v := range map[string]attribute.Value{
			"messaging.system":           attribute.StringValue(br.system),
			"messaging.destination.name": attribute.StringValue("tracing_test.happened"),
			"messaging.operation.type":   attribute.StringValue("send"),
			"messaging.message.id":       attribute.StringValue(id),
		} {
			if got := attr(prod.Attributes(), k); got != v {
				t.Errorf("producer %s = %v, want %v", k, got.Emit(), v.Emit())
			}
		}
		if cons.Status().Code != codes.Unset {
			t.Errorf("consumer status %v, want unset", cons.Status())
		}
	})
}

// TestLinkMode: with TraceLinks the consumer span starts a new trace with a
// link to the producer span.
func TestLinkMode(t *testing.T) {
	eachBroker(t, func(t *testing.T, br broker) {
		o := newOtel(t)
		cfg := o.config(br, nil)
		cfg.TraceLinks = true
		got := make(chan handled, 1)
		b := startBus(t, cfg, func(b *bus.Bus) {
			if err := bus.Listen(b, happened, "audit", record(got)); err != nil {
				t.Fatal(err)
			}
		})
		id, request := fireTraced(t, o, b)
		h := receive(t, got)
		prod := o.waitSpans(t, 1, producerSpan(id))[0]
		cons := o.waitSpans(t, 1, consumerSpans(id))[0]
		if cons.SpanContext().TraceID() == request.TraceID() || cons.Parent().IsValid() {
			t.Errorf("consumer span is in the firing trace or has a parent; want a new root")
		}
		if len(cons.Links()) != 1 || !cons.Links()[0].SpanContext.Equal(prod.SpanContext().WithRemote(true)) {
			t.Errorf("consumer links %+v, want one to the producer span %s", cons.Links(), prod.SpanContext().SpanID())
		}
		if h.member != "acme" {
			t.Errorf("baggage lost in link mode: %q", h.member)
		}
	})
}

// TestRetriedAttempts: a handler that fails on the first delivery and
// succeeds on the second gives two CONSUMER spans in the firing trace, the
// first retried with an error status, and metrics counting both.
func TestRetriedAttempts(t *testing.T) {
	eachBroker(t, func(t *testing.T, br broker) {
		o := newOtel(t)
		var calls atomic.Int32
		done := make(chan struct{})
		failure := errors.New("mail server busy")
		b := startBus(t, o.config(br, nil), func(b *bus.Bus) {
			err := bus.Listen(b, happened, "mail", func(ctx context.Context, d bus.Delivery[Payload]) error {
				if calls.Add(1) == 1 {
					return failure
				}
				close(done)
				return nil
			}, bus.WithRetry(bus.RetryPolicy{Tries: 1, RedeliveryDelay: func(int) time.Duration { return 50 * time.Millisecond }}))
			if err != nil {
				t.Fatal(err)
			}
		})
		id, request := fireTraced(t, o, b)
		<-done
		prod := o.waitSpans(t, 1, producerSpan(id))[0]
		spans := o.waitSpans(t, 2, consumerSpans(id))
		byAttempt := map[int64]sdktrace.ReadOnlySpan{}
		for _, s := range spans {
			byAttempt[attr(s.Attributes(), tracing.AttrAttempt).AsInt64()] = s
			if s.SpanContext().TraceID() != request.TraceID() || s.Parent().SpanID() != prod.SpanContext().SpanID() {
				t.Errorf("attempt span not a child of the producer span")
			}
		}
		first, second := byAttempt[1], byAttempt[2]
		if first == nil || second == nil {
			t.Fatalf("want spans for attempts 1 and 2, have %v", byAttempt)
		}
		if got := attr(first.Attributes(), tracing.AttrOutcome).AsString(); got != "retried" {
			t.Errorf("attempt 1 outcome %q, want retried", got)
		}
		if first.Status().Code != codes.Error || first.Status().Description != failure.Error() {
			t.Errorf("attempt 1 status %+v, want error %q", first.Status(), failure)
		}
		if len(first.Events()) == 0 || first.Events()[0].Name != "exception" {
			t.Errorf("attempt 1 has no exception event: %+v", first.Events())
		}
		if got := attr(second.Attributes(), tracing.AttrOutcome).AsString(); got != "ok" || second.Status().Code == codes.Error {
			t.Errorf("attempt 2 outcome %q status %v, want ok", got, second.Status())
		}

		group := attribute.String("messaging.consumer.group.name", "tt-mail")
		// The handler's span ends, then its metrics are recorded one after
		// the other: wait for all of them.
		waitFor(t, func() bool {
			return o.counter(t, tracing.MetricConsumed, group, attribute.String(tracing.AttrOutcome, "retried")) == 1 &&
				o.counter(t, tracing.MetricConsumed, group, attribute.String(tracing.AttrOutcome, "ok")) == 1 &&
				o.counter(t, tracing.MetricProcessTime, group) >= 2
		}, "consumed{retried}=1, consumed{ok}=1 and two process durations")
		if n := o.counter(t, tracing.MetricProcessTime, group); n != 2 {
			t.Errorf("process duration has %d measurements, want 2", n)
		}
		sys := attribute.String("messaging.system", br.system)
		if n := o.counter(t, tracing.MetricSent, sys, attribute.String("messaging.destination.name", "tracing_test.happened")); n != 1 {
			t.Errorf("sent = %d, want 1", n)
		}
		if n := o.counter(t, tracing.MetricPublishTime, sys); n != 1 {
			t.Errorf("publish duration has %d measurements, want 1", n)
		}
	})
}

// TestInProcessRetriesAndDeadLetter: in-process retries stay in one span
// (an exception event per failed try) and are counted; a permanent error
// dead-letters the event with an error status and is counted.
func TestInProcessRetriesAndDeadLetter(t *testing.T) {
	eachBroker(t, func(t *testing.T, br broker) {
		o := newOtel(t)
		var mu sync.Mutex
		calls := map[int]int{}
		done := make(chan struct{}, 2)
		b := startBus(t, o.config(br, nil), func(b *bus.Bus) {
			err := bus.Listen(b, happened, "audit", func(ctx context.Context, d bus.Delivery[Payload]) error {
				mu.Lock()
				calls[d.Payload.N]++
				n := calls[d.Payload.N]
				mu.Unlock()
				switch {
				case d.Payload.N == 2:
					done <- struct{}{}
					return bus.Permanent(errors.New("malformed order"))
				case n <= 2:
					return errors.New("flaky")
				}
				done <- struct{}{}
				return nil
			}, bus.WithRetry(bus.RetryPolicy{Tries: 3, InitialInterval: time.Millisecond}))
			if err != nil {
				t.Fatal(err)
			}
		})
		ctx := context.Background()
		flaky, err := bus.Fire(ctx, b, happened, Payload{N: 1})
		if err != nil {
			t.Fatal(err)
		}
		bad, err := bus.Fire(ctx, b, happened, Payload{N: 2})
		if err != nil {
			t.Fatal(err)
		}
		<-done
		<-done

		s := o.waitSpans(t, 1, consumerSpans(flaky))[0]
		if got := attr(s.Attributes(), tracing.AttrRetries).AsInt64(); got != 2 {
			t.Errorf("retries = %d, want 2", got)
		}
		var tries []int64
		for _, e := range s.Events() {
			if e.Name == "exception" {
				tries = append(tries, attr(e.Attributes, "busline.try").AsInt64())
			}
		}
		if len(tries) != 2 || tries[0] != 1 || tries[1] != 2 {
			t.Errorf("exception events for tries %v, want [1 2]", tries)
		}
		if got := attr(s.Attributes(), tracing.AttrOutcome).AsString(); got != "ok" || s.Status().Code == codes.Error {
			t.Errorf("outcome %q status %v, want ok", got, s.Status())
		}

		d := o.waitSpans(t, 1, consumerSpans(bad))[0]
		if got := attr(d.Attributes(), tracing.AttrOutcome).AsString(); got != "dead_lettered" {
			t.Errorf("outcome %q, want dead_lettered", got)
		}
		if d.Status().Code != codes.Error {
			t.Errorf("dead-lettered span status %v, want error", d.Status())
		}
		var sawDead bool
		for _, e := range d.Events() {
			sawDead = sawDead || e.Name == "dead_lettered"
		}
		if !sawDead {
			t.Errorf("no dead_lettered event: %+v", d.Events())
		}

		group := attribute.String("messaging.consumer.group.name", "tt-audit")
		waitFor(t, func() bool {
			return o.counter(t, tracing.MetricRetries, group) == 2 &&
				o.counter(t, tracing.MetricDeadLetters, group) == 1 &&
				o.counter(t, tracing.MetricConsumed, group, attribute.String(tracing.AttrOutcome, "dead_lettered")) == 1
		}, "retries=2, dead_letters=1, consumed{dead_lettered}=1")
	})
}

// TestDuplicateSkipped: the same event ID fired twice runs the handler once;
// the second delivery's span and metrics say duplicate_skipped, and the
// idempotency counter lands in the same meter provider.
func TestDuplicateSkipped(t *testing.T) {
	eachBroker(t, func(t *testing.T, br broker) {
		o := newOtel(t)
		got := make(chan handled, 2)
		b := startBus(t, o.config(br, nil), func(b *bus.Bus) {
			if err := bus.Listen(b, happened, "audit", record(got), bus.WithConcurrency(1)); err != nil {
				t.Fatal(err)
			}
		})
		id := "0190a000-0000-7000-8000-" + randomName()[10:] + "0000"
		for range 2 {
			if _, err := bus.Fire(context.Background(), b, happened, Payload{N: 1}, bus.WithEventID(id)); err != nil {
				t.Fatal(err)
			}
		}
		receive(t, got)
		spans := o.waitSpans(t, 2, consumerSpans(id))
		outcomes := map[string]int{}
		for _, s := range spans {
			outcomes[attr(s.Attributes(), tracing.AttrOutcome).AsString()]++
		}
		if outcomes["ok"] != 1 || outcomes["duplicate_skipped"] != 1 {
			t.Errorf("outcomes %v, want one ok and one duplicate_skipped", outcomes)
		}
		group := attribute.String("messaging.consumer.group.name", "tt-audit")
		waitFor(t, func() bool {
			return o.counter(t, tracing.MetricConsumed, group, attribute.String(tracing.AttrOutcome, "duplicate_skipped")) == 1 &&
				o.counter(t, "busline.idempotency.duplicates", group) == 1
		}, "consumed{duplicate_skipped}=1 and busline.idempotency.duplicates=1")
		select {
		case h := <-got:
			t.Errorf("handler ran twice (attempt %d)", h.attempt)
		default:
		}
	})
}

// TestLagGauge: the lag and pending gauges report the listener's group
// through the transport's Inspector.
func TestLagGauge(t *testing.T) {
	eachBroker(t, func(t *testing.T, br broker) {
		o := newOtel(t)
		got := make(chan handled, 1)
		b := startBus(t, o.config(br, nil), func(b *bus.Bus) {
			if err := bus.Listen(b, happened, "audit", record(got)); err != nil {
				t.Fatal(err)
			}
		})
		if _, err := bus.Fire(context.Background(), b, happened, Payload{N: 1}); err != nil {
			t.Fatal(err)
		}
		receive(t, got)
		match := []attribute.KeyValue{
			attribute.String("messaging.system", br.system),
			attribute.String("messaging.consumer.group.name", "tt-audit"),
			attribute.String("messaging.destination.name", "tracing_test.happened"),
		}
		waitFor(t, func() bool {
			return o.has(t, tracing.MetricLag, match...) && o.counter(t, tracing.MetricLag, match...) == 0
		}, "%s = 0 for tt-audit", tracing.MetricLag)
	})
}

// TestNoSDK: with no-op providers nothing is injected and the handler
// sees no valid span.
func TestNoSDK(t *testing.T) {
	got := make(chan handled, 1)
	b := startBus(t, bus.Config{Service: service, Transport: "memory://"}, func(b *bus.Bus) {
		if err := bus.Listen(b, happened, "audit", func(ctx context.Context, d bus.Delivery[Payload]) error {
			if _, ok := d.Metadata["traceparent"]; ok {
				t.Errorf("traceparent injected without a propagator: %v", d.Metadata)
			}
			got <- handled{span: trace.SpanContextFromContext(ctx)}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := bus.Fire(context.Background(), b, happened, Payload{}); err != nil {
		t.Fatal(err)
	}
	if h := receive(t, got); h.span.IsValid() {
		t.Errorf("handler has a valid span %v without an SDK", h.span)
	}
}

// TestNoSDKPropagates: with a propagator but no SDK, the caller's span
// context (from an upstream service) still crosses the broker, as a
// non-recording span would carry it.
func TestNoSDKPropagates(t *testing.T) {
	got := make(chan handled, 1)
	b := startBus(t, bus.Config{Service: service, Transport: "memory://",
		Propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})},
		func(b *bus.Bus) {
			if err := bus.Listen(b, happened, "audit", record(got)); err != nil {
				t.Fatal(err)
			}
		})
	upstream := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), upstream)
	if _, err := bus.Fire(ctx, b, happened, Payload{}); err != nil {
		t.Fatal(err)
	}
	h := receive(t, got)
	if h.span.TraceID() != upstream.TraceID() || h.span.SpanID() != upstream.SpanID() {
		t.Errorf("handler span context %v, want the upstream %v", h.span, upstream)
	}
}
