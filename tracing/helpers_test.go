package tracing_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/internal/brokertest"
	_ "github.com/busline/busline/transports/all"
)

const (
	redisAddr = "127.0.0.1:6379"
	amqpAddr  = "127.0.0.1:5672"
	service   = "tt"
)

// Payload is the payload of the test event.
type Payload struct {
	N int `json:"n"`
}

var happened = bus.NewEvent[Payload]("tracing_test", "happened")

// broker is a real broker under names of the test's own.
type broker struct {
	name   string // memory, redis, amqp
	system string // the messaging.system value
	url    string
}

func randomName() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "tracetest-" + hex.EncodeToString(b)
}

// eachBroker runs fn as a subtest per broker; a broker that is not
// reachable is skipped (or fails the test with BUSLINE_REQUIRE_BROKERS=1).
func eachBroker(t *testing.T, fn func(t *testing.T, b broker)) {
	t.Helper()
	for _, name := range []string{"memory", "redis", "amqp"} {
		t.Run(name, func(t *testing.T) {
			fn(t, newBroker(t, name))
		})
	}
}

func newBroker(t *testing.T, name string) broker {
	t.Helper()
	run := randomName()
	switch name {
	case "redis":
		available(t, redisAddr, "redis-server --port 6379")
		t.Cleanup(func() { brokertest.DeleteRedisPrefix(t, redisAddr, run+":") })
		return broker{name: name, system: "redis", url: "redis://" + redisAddr + "/0?prefix=" + run + ":"}
	case "amqp":
		available(t, amqpAddr, "rabbitmq-server (guest/guest on 5672)")
		t.Cleanup(func() { cleanAMQP(t, run) })
		return broker{name: name, system: "rabbitmq",
			url: "amqp://guest:guest@" + amqpAddr + "/?exchange=" + run + "&queue_prefix=" + run + ".&retry_delays=50ms"}
	}
	return broker{name: "memory", system: "memory", url: "memory://"}
}

// testListeners are the listener names tests use: cleanAMQP deletes their queues.
var testListeners = []string{"audit", "mail"}

// cleanAMQP deletes the queues of the test groups under prefix run and the exchange run.
func cleanAMQP(t *testing.T, run string) {
	conn, err := amqp091.Dial("amqp://guest:guest@" + amqpAddr + "/")
	if err != nil {
		t.Logf("cleanup %s: %v", run, err)
		return
	}
	defer conn.Close()
	for _, l := range testListeners {
		q := run + "." + service + "-" + l
		for _, name := range []string{q, q + ".dead", q + ".retry.50ms"} {
			ch, err := conn.Channel()
			if err != nil {
				return
			}
			if _, err := ch.QueueDeclarePassive(name, true, false, false, false, nil); err == nil {
				_, _ = ch.QueueDelete(name, false, false, false)
			}
			_ = ch.Close()
		}
	}
	// The owners record queue every Start writes to (transports.RecordStore).
	if ch, err := conn.Channel(); err == nil {
		_, _ = ch.QueueDelete(run+"."+run+".records.owners", false, false, false)
		_, _ = ch.QueueDelete(run+"."+run+".records.schemas", false, false, false)
		_ = ch.Close()
	}
	if ch, err := conn.Channel(); err == nil {
		_ = ch.ExchangeDelete(run, false, false)
		_ = ch.Close()
	}
}

// otelSetup is an SDK for one test: spans in a recorder, metrics in a manual reader.
type otelSetup struct {
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
	prop   propagation.TextMapPropagator
}

func newOtel(t *testing.T) *otelSetup {
	t.Helper()
	o := &otelSetup{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	o.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(o.spans))
	o.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(o.reader))
	o.prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	t.Cleanup(func() {
		_ = o.tp.Shutdown(context.Background())
		_ = o.mp.Shutdown(context.Background())
	})
	return o
}

// config is a bus configuration on b with o's providers.
func (o *otelSetup) config(b broker, logger *slog.Logger) bus.Config {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return bus.Config{
		Service: service, Process: "p1", Transport: b.url, Logger: logger,
		TracerProvider: o.tp, MeterProvider: o.mp, Propagator: o.prop,
	}
}

// waitSpans waits until the recorder holds n ended spans matching keep.
func (o *otelSetup) waitSpans(t *testing.T, n int, keep func(sdktrace.ReadOnlySpan) bool) []sdktrace.ReadOnlySpan {
	t.Helper()
	var got []sdktrace.ReadOnlySpan
	waitFor(t, func() bool {
		got = got[:0]
		for _, s := range o.spans.Ended() {
			if keep(s) {
				got = append(got, s)
			}
		}
		return len(got) >= n
	}, "%d ended spans", n)
	return got
}

// consumerSpans keeps the CONSUMER spans of event id.
func consumerSpans(id string) func(sdktrace.ReadOnlySpan) bool {
	return func(s sdktrace.ReadOnlySpan) bool {
		return s.SpanKind() == trace.SpanKindConsumer && attr(s.Attributes(), "messaging.message.id").AsString() == id
	}
}

func producerSpan(id string) func(sdktrace.ReadOnlySpan) bool {
	return func(s sdktrace.ReadOnlySpan) bool {
		return s.SpanKind() == trace.SpanKindProducer && attr(s.Attributes(), "messaging.message.id").AsString() == id
	}
}

// attr returns the value of key in kvs (the zero Value when absent).
func attr(kvs []attribute.KeyValue, key string) attribute.Value {
	for _, kv := range kvs {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// counter returns the sum of the data points of the Int64 sum or gauge
// name whose attributes include every one of match.
func (o *otelSetup) counter(t *testing.T, name string, match ...attribute.KeyValue) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := o.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					if hasAll(dp.Attributes, match) {
						total += dp.Value
					}
				}
			case metricdata.Gauge[int64]:
				for _, dp := range d.DataPoints {
					if hasAll(dp.Attributes, match) {
						total += dp.Value
					}
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					if hasAll(dp.Attributes, match) {
						total += int64(dp.Count)
					}
				}
			}
		}
	}
	return total
}

// has reports whether the metric name has a data point with match.
func (o *otelSetup) has(t *testing.T, name string, match ...attribute.KeyValue) bool {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := o.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			if g, ok := m.Data.(metricdata.Gauge[int64]); ok {
				for _, dp := range g.DataPoints {
					if hasAll(dp.Attributes, match) {
						return true
					}
				}
			}
		}
	}
	return false
}

func hasAll(set attribute.Set, match []attribute.KeyValue) bool {
	for _, kv := range match {
		v, ok := set.Value(kv.Key)
		if !ok || v != kv.Value {
			return false
		}
	}
	return true
}

// waitFor polls cond until it holds or 20s pass.
func waitFor(t *testing.T, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for "+format, args...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startBus makes, starts and (at cleanup) closes a bus after register
// added its listeners.
func startBus(t *testing.T, cfg bus.Config, register func(b *bus.Bus)) *bus.Bus {
	t.Helper()
	b, err := bus.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	register(b)
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return b
}

func available(t *testing.T, addr, how string) { t.Helper(); brokertest.Reachable(t, addr, how) }
