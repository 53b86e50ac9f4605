package idempotency_test

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/busline/busline/idempotency"
)

// DoneCheck answers whether the group handled an event, leaves no claim
// on a key it finds free, and counts an event found done as a duplicate,
// in the same counter and hook as the middleware.
func TestDoneCheck(t *testing.T) {
	ctx := context.Background()
	store := idempotency.NewMemoryStore()
	reader := sdkmetric.NewManualReader()
	hooked := 0
	check := idempotency.DoneCheck(idempotency.Options{
		Store: store, Group: "billing-invoice",
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)),
		OnDuplicate:   func(*message.Message) { hooked++ },
	})
	_, l, err := store.Begin(ctx, idempotency.Key("billing-invoice", "done-1"), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Commit(ctx, l, time.Hour); err != nil {
		t.Fatal(err)
	}

	if done, err := check(ctx, message.NewMessage("free-1", nil)); err != nil || done {
		t.Fatalf("a free event: done %v, %v", done, err)
	}
	if st, _, err := store.Begin(ctx, idempotency.Key("billing-invoice", "free-1"), time.Minute); err != nil || st != idempotency.Fresh {
		t.Fatalf("Begin after the check = %v, %v; want Fresh (no claim left)", st, err)
	}
	if done, err := check(ctx, message.NewMessage("done-1", nil)); err != nil || !done {
		t.Fatalf("a done event: done %v, %v", done, err)
	}
	if hooked != 1 {
		t.Errorf("OnDuplicate called %d times, want 1", hooked)
	}
	if n := duplicatesCounted(t, reader); n != 1 {
		t.Errorf("busline.idempotency.duplicates = %d, want 1", n)
	}
}

func duplicatesCounted(t *testing.T, reader *sdkmetric.ManualReader) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "busline.idempotency.duplicates" {
				continue
			}
			for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
				n += p.Value
			}
		}
	}
	return n
}
