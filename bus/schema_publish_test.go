package bus

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/busline/busline/internal/syncbuf"
	"github.com/busline/busline/schema"
	"github.com/busline/busline/transports"
)

// recordsOf returns where b keeps records.
func recordsOf(t *testing.T, b *Bus) transports.RecordStore {
	t.Helper()
	rs, ok := b.transport.(transports.RecordStore)
	if !ok {
		t.Fatalf("%T keeps no records", b.transport)
	}
	return rs
}

type stockV1 struct {
	SKU   string  `json:"sku"`
	Price float64 `json:"price"`
}

type stockV2 struct {
	SKU    string  `json:"sku"`
	Amount float64 `json:"amount"`
}

func TestSchemasPublishedAtStart(t *testing.T) {
	url := "memory://schemas-" + rand.Text()
	ev1 := NewEvent[stockV1]("stock", "priced")
	ev2 := NewEvent[stockV2]("stock", "priced")
	ctx := context.Background()

	logs := &syncbuf.Buffer{}
	newBus := func(service string) *Bus {
		b, err := New(Config{Service: service, Transport: url, Logger: slog.New(slog.NewTextHandler(logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}

	alerts := newBus("alerts")
	rs := recordsOf(t, alerts)
	if err := Listen(alerts, ev1, "notify", func(context.Context, Delivery[stockV1]) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := alerts.Start(ctx); err != nil {
		t.Fatal(err)
	}

	pricing := newBus("pricing")
	if err := Declare(pricing, ev2); err != nil {
		t.Fatal(err)
	}
	if err := pricing.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := Declare(pricing, ev2); err == nil {
		t.Error("Declare after Start succeeded")
	}

	recs, err := schema.Published(ctx, rs)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("records %+v, want 2", recs)
	}
	fires, listens := recs[0], recs[1]
	if fires.Key() != "stock.priced/pricing/fires" || listens.Key() != "stock.priced/alerts/listens" {
		t.Errorf("keys %s, %s", fires.Key(), listens.Key())
	}
	if fires.Hash != ev2.Schema().Hash || listens.Hash != ev1.Schema().Hash || fires.Hash == listens.Hash {
		t.Errorf("hashes %s %s", fires.Hash, listens.Hash)
	}
	if len(listens.Listeners) != 1 || listens.Listeners[0] != "notify" || listens.Process == "" || listens.PublishedAt.IsZero() {
		t.Errorf("listener record %+v", listens)
	}
	if !json.Valid(fires.Schema) {
		t.Errorf("schema %s", fires.Schema)
	}
	// The second service to start sees the disagreement and says so.
	out := logs.String()
	if !strings.Contains(out, "event schema disagrees with another service") || !strings.Contains(out, "/price") {
		t.Errorf("no warning about the disagreement in the logs:\n%s", out)
	}

	var buf bytes.Buffer
	if err := pricing.ExportSchemas(&buf); err != nil {
		t.Fatal(err)
	}
	f, err := schema.ReadFile(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if f.Service != "pricing" || len(f.Schemas) != 1 || f.Schemas[0].Role != schema.RoleFires {
		t.Errorf("exported %+v", f)
	}
	if rep := schema.Check(f, recs); rep.OK() {
		t.Errorf("check passed a renamed field a listener requires: %+v", rep)
	}
}

func TestSchemasNotWrittenAgainUnchanged(t *testing.T) {
	url := "memory://schemas-" + rand.Text()
	ev := NewEvent[stockV1]("stock", "priced")
	ctx := context.Background()
	start := func(listeners ...string) {
		t.Helper()
		b, err := New(Config{Service: "alerts", Transport: url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		for _, l := range listeners {
			if err := Listen(b, ev, l, func(context.Context, Delivery[stockV1]) error { return nil }); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	record := func() schema.Record {
		t.Helper()
		b, err := New(Config{Service: "reader", Transport: url})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = b.Close() }()
		recs, err := schema.Published(ctx, recordsOf(t, b))
		if err != nil || len(recs) != 1 {
			t.Fatalf("records %+v, %v; want 1", recs, err)
		}
		return recs[0]
	}

	start("notify")
	first := record()
	start("notify") // the same schema and listeners: not written again
	if again := record(); again.Process != first.Process || !again.PublishedAt.Equal(first.PublishedAt) {
		t.Fatalf("an unchanged record was written again: %+v, then %+v", first, again)
	}
	start("notify", "audit") // a listener more: written
	if changed := record(); changed.Process == first.Process || !slices.Equal(changed.Listeners, []string{"audit", "notify"}) {
		t.Fatalf("a changed record was not written: %+v, then %+v", first, changed)
	}
}

func TestStaleSchemas(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	rec := func(sch string, at time.Time, listeners ...string) schema.Record {
		return schema.Record{Event: "stock.priced", Service: "alerts", Role: schema.RoleListens, Schema: json.RawMessage(sch), Listeners: listeners, PublishedAt: at}
	}
	const h1 = `{"type": "object", "properties": {"sku": {"type": "string"}}}`
	mine := []schema.Record{rec(h1, time.Time{}, "notify")}
	for _, c := range []struct {
		name      string
		published []schema.Record
		stale     bool
	}{
		{"absent", nil, true},
		{"same, recent", []schema.Record{rec(h1, now.Add(-time.Hour), "notify")}, false},
		{"same but for space", []schema.Record{rec(`{"type":"object","properties":{"sku":{"type":"string"}}}`, now, "notify")}, false},
		{"same, a day old", []schema.Record{rec(h1, now.Add(-schemaRefresh), "notify")}, true},
		{"same, from a clock ahead", []schema.Record{rec(h1, now.Add(time.Hour), "notify")}, true},
		{"other schema", []schema.Record{rec(`{"type": "object"}`, now, "notify")}, true},
		{"a description more", []schema.Record{rec(`{"type": "object", "properties": {"sku": {"type": "string", "description": "stock unit"}}}`, now, "notify")}, true},
		{"other listeners", []schema.Record{rec(h1, now, "notify", "audit")}, true},
	} {
		if got := len(staleSchemas(mine, c.published, now)) == 1; got != c.stale {
			t.Errorf("%s: stale = %v, want %v", c.name, got, c.stale)
		}
	}
}
