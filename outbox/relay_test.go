package outbox_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/internal/brokertest"
	"github.com/busline/busline/outbox"
)

// TestCrashBetweenPublishAndMark: a relay whose database session ends
// after it published a batch and before it marked it publishes the batch
// again, with the same event IDs, and then marks it.
func TestCrashBetweenPublishAndMark(t *testing.T) {
	w := newWorld(t)
	ob := w.outbox(outbox.Options{})
	var crashed atomic.Bool
	outbox.SetAfterPublish(ob, func(conn *pgx.Conn) {
		if crashed.CompareAndSwap(false, true) {
			_ = conn.PgConn().Close(context.Background()) // the session dies: the mark fails
		}
	})
	ids := w.fire(ob, true, 1, 2)
	if err := ob.Start(); err != nil {
		t.Fatal(err)
	}
	got := w.waitDeliveries(4, 10*time.Second)
	want := []string{ids[0], ids[1], ids[0], ids[1]}
	for i, d := range got {
		if d.id != want[i] {
			t.Fatalf("delivery %d = %s, want %s (the batch again, same IDs)", i, d.id, want[i])
		}
	}
	waitFor(t, 10*time.Second, "the batch marked", func() bool {
		return w.count("SELECT count(*) FROM "+ob.Table()+" WHERE published_at IS NULL") == 0
	})
}

// TestTelemetry: the relay counts what it published, reports the backlog
// and which process is active, and makes a span per batch linked to the
// Fire spans; the listener's span is a child of the Fire span.
func TestTelemetry(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	prop := propagation.TraceContext{}
	w := newWorld(t, func(c *bus.Config) { c.TracerProvider, c.MeterProvider, c.Propagator = tp, mp, prop })
	ob := w.outbox(outbox.Options{TracerProvider: tp, MeterProvider: mp, Propagator: prop})
	w.fire(ob, true, 1, 2, 3)
	if err := ob.Start(); err != nil {
		t.Fatal(err)
	}
	w.waitDeliveries(3, 10*time.Second)
	waitFor(t, 10*time.Second, "the relay active", ob.Active)
	waitFor(t, 10*time.Second, "the batch span and the listener spans", func() bool {
		batches, consumed := 0, 0
		for _, s := range rec.Ended() {
			if s.Name() == "publish outbox" {
				batches++
			} else if s.SpanKind() == trace.SpanKindConsumer {
				consumed++
			}
		}
		return batches > 0 && consumed >= 3
	})

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	sums := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					sums[m.Name] += p.Value
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					sums[m.Name] += p.Value
				}
			case metricdata.Gauge[float64]:
				sums[m.Name] += int64(len(d.DataPoints))
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					sums[m.Name] += int64(p.Count)
				}
			}
		}
	}
	for name, want := range map[string]int64{
		outbox.MetricPublished: 3, outbox.MetricDelay: 3, outbox.MetricActive: 1, outbox.MetricLag: 1,
	} {
		if sums[name] != want {
			t.Errorf("%s = %d, want %d (all: %v)", name, sums[name], want, sums)
		}
	}

	var fires, consumers []sdktrace.ReadOnlySpan
	var batch sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		switch {
		case s.Name() == "publish outbox":
			batch = s
		case s.SpanKind() == trace.SpanKindProducer:
			fires = append(fires, s)
		case s.SpanKind() == trace.SpanKindConsumer:
			consumers = append(consumers, s)
		}
	}
	if batch == nil || len(fires) != 3 {
		t.Fatalf("spans: batch %v, %d fire spans, want a batch span and 3", batch != nil, len(fires))
	}
	linked := map[trace.SpanID]bool{}
	for _, l := range batch.Links() {
		linked[l.SpanContext.SpanID()] = true
	}
	parents := map[trace.SpanID]bool{}
	for _, c := range consumers {
		parents[c.Parent().SpanID()] = true
	}
	for _, f := range fires {
		if !linked[f.SpanContext().SpanID()] {
			t.Errorf("the batch span has no link to fire span %s", f.SpanContext().SpanID())
		}
		if !parents[f.SpanContext().SpanID()] {
			t.Errorf("no listener span is a child of fire span %s", f.SpanContext().SpanID())
		}
	}
}

// TestRelaySessionSettings: the relay's session has no statement or lock
// timeout even when the pool's configuration sets one (a standby waits for
// the lock as long as the holder lives), and over TCP the server probes
// the relay after 10s of silence, so that the lock of a relay whose
// machine vanished is freed in seconds.
func TestRelaySessionSettings(t *testing.T) {
	w := newWorld(t)
	sep := "?"
	if strings.Contains(brokertest.PostgresURL(), "?") {
		sep = "&"
	}
	pool, err := pgxpool.New(context.Background(), brokertest.PostgresURL()+sep+"statement_timeout=1000&lock_timeout=1000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	ob, err := outbox.New(context.Background(), w.bus, pool, outbox.Options{Table: w.table, AutoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ob.Close() })
	type settings struct {
		statement, lock, keepalive string
		tcp                        bool
	}
	got := make(chan settings, 1)
	outbox.SetAfterPublish(ob, func(conn *pgx.Conn) {
		var s settings
		err := conn.QueryRow(context.Background(), `SELECT current_setting('statement_timeout'), current_setting('lock_timeout'),
	current_setting('tcp_keepalives_idle'), inet_client_addr() IS NOT NULL`).Scan(&s.statement, &s.lock, &s.keepalive, &s.tcp)
		if err != nil {
			t.Error(err)
		}
		select {
		case got <- s:
		default:
		}
	})
	w.fire(ob, true, 1)
	if err := ob.Start(); err != nil {
		t.Fatal(err)
	}
	var s settings
	select {
	case s = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the relay published nothing in 10s")
	}
	if s.statement != "0" || s.lock != "0" {
		t.Errorf("relay session: statement_timeout %s, lock_timeout %s; want 0 and 0", s.statement, s.lock)
	}
	if s.tcp && s.keepalive != "10" && s.keepalive != "10s" {
		t.Errorf("relay session over TCP: tcp_keepalives_idle %s, want 10s", s.keepalive)
	}
}
