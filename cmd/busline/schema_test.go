package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/transports"
)

type stockV1 struct {
	SKU   string  `json:"sku"`
	Price float64 `json:"price"`
}

// stockV2 renames price: a breaking change for a listener that requires it.
type stockV2 struct {
	SKU    string  `json:"sku"`
	Amount float64 `json:"amount"`
}

var (
	stockPricedV1 = bus.NewEvent[stockV1]("stock", "priced")
	stockPricedV2 = bus.NewEvent[stockV2]("stock", "priced")
)

// schemaBus starts a bus of service on b that fires or listens to ev.
func schemaBus[T any](t *testing.T, b broker, service string, ev bus.Event[T], listen, start bool) *bus.Bus {
	t.Helper()
	bs, err := bus.New(bus.Config{Service: service, Transport: b.url, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bs.Close() })
	if listen {
		err = bus.Listen(bs, ev, "notify", func(context.Context, bus.Delivery[T]) error { return nil })
	} else {
		err = bus.Declare(bs, ev)
	}
	if err != nil {
		t.Fatal(err)
	}
	if start {
		if err := bs.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return bs
}

// keepsRecords reports whether b's transport is a RecordStore.
func keepsRecords(t *testing.T, b broker) bool {
	t.Helper()
	tr, err := transports.Open(context.Background(), b.url, transports.OpenOptions{Service: "probe"})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	_, ok := tr.(transports.RecordStore)
	return ok
}

// cleanRecords deletes the schema records queue of an AMQP test broker
// ("{queue_prefix}{exchange}.records.schemas").
func cleanRecords(b broker) {
	if b.name != "amqp" {
		return
	}
	conn, err := amqp091.Dial("amqp://guest:guest@" + amqpAddr + "/")
	if err != nil {
		return
	}
	defer conn.Close()
	if ch, err := conn.Channel(); err == nil {
		_, _ = ch.QueueDelete(b.run+"."+b.run+".records.schemas", false, false, false)
		_ = ch.Close()
	}
}

func TestSchemaCommands(t *testing.T) {
	eachBroker(t, func(t *testing.T, b broker) {
		t.Cleanup(func() { cleanRecords(b) })
		if !keepsRecords(t, b) {
			r := run(t, "--transport", b.url, "schema", "list").expect(t, exitUnsupported)
			if !strings.Contains(r.stderr, "keeps no records") {
				t.Errorf("stderr %q", r.stderr)
			}
			return
		}
		schemaBus(t, b, "alerts", stockPricedV1, true, true)
		schemaBus(t, b, "pricing", stockPricedV1, false, true)

		// list
		r := run(t, "--transport", b.url, "--json", "schema").expect(t, exitOK) // schema is schema list
		var list struct {
			Transport string         `json:"transport"`
			Events    []eventSchemas `json:"events"`
		}
		mustJSON(t, r.stdout, &list)
		if len(list.Events) != 1 {
			t.Fatalf("events %+v", list.Events)
		}
		e := list.Events[0]
		if e.Event != "stock.priced" || len(e.Fires) != 1 || e.Fires[0].Service != "pricing" ||
			len(e.Listens) != 1 || e.Listens[0].Service != "alerts" || e.Listens[0].Listeners[0] != "notify" ||
			e.HashesDiffer || len(e.Breaking) != 0 || e.Fires[0].Hash != stockPricedV1.Schema().Hash ||
			!strings.Contains(string(e.Listens[0].Schema), `"price"`) {
			t.Errorf("event %+v", e)
		}
		r = run(t, "--transport", b.url, "schema", "list").expect(t, exitOK)
		for _, want := range []string{"EVENT", "stock.priced", "fires", "pricing", "listens", "alerts", stockPricedV1.Schema().Hash[7:19]} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("list lacks %q:\n%s", want, r.stdout)
			}
		}
		checkAligned(t, r.stdout)

		// show
		r = run(t, "--transport", b.url, "--json", "schema", "show", "stock.priced").expect(t, exitOK)
		if strings.Count(r.stdout, `"role"`) != 2 || !strings.Contains(r.stdout, `"sku"`) {
			t.Errorf("show --json:\n%s", r.stdout)
		}
		r = run(t, "--transport", b.url, "schema", "show", "stock.priced").expect(t, exitOK)
		if !strings.Contains(r.stdout, "pricing fires sha256:") || !strings.Contains(r.stdout, `"price"`) {
			t.Errorf("show:\n%s", r.stdout)
		}
		run(t, "--transport", b.url, "schema", "show", "stock.missing").expect(t, exitNotFound)

		// export, then check: the file of what runs is compatible.
		dir := t.TempDir()
		current := filepath.Join(dir, "current.json")
		run(t, "--transport", b.url, "schema", "export", "--service", "pricing", "-o", current).expect(t, exitOK)
		r = run(t, "--transport", b.url, "schema", "check", current).expect(t, exitOK)
		if !strings.Contains(r.stdout, "no breaking change") || !strings.Contains(r.stdout, "1 firer/listener pair(s) compared") {
			t.Errorf("check of the current schemas:\n%s", r.stdout)
		}
		run(t, "--transport", b.url, "schema", "export", "--service", "nobody").expect(t, exitNotFound)

		// The next build of pricing renames price: check refuses it.
		next := schemaBus(t, b, "pricing", stockPricedV2, false, false)
		file := filepath.Join(dir, "next.json")
		f, err := os.Create(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := next.ExportSchemas(f); err != nil {
			t.Fatal(err)
		}
		_ = f.Close()
		r = run(t, "--transport", b.url, "schema", "check", file).expect(t, exitFailure)
		if !strings.Contains(r.stdout, "field /price is required by the listener and missing") || !strings.Contains(r.stdout, "pricing fires, alerts listens") {
			t.Errorf("check of a breaking change:\n%s", r.stdout)
		}
		r = run(t, "--transport", b.url, "--json", "schema", "check", file).expect(t, exitFailure)
		if !strings.Contains(r.stdout, `"ok": false`) || !strings.Contains(r.stdout, `"kind": "missing_field"`) {
			t.Errorf("check --json:\n%s", r.stdout)
		}
		run(t, "--transport", b.url, "schema", "check", filepath.Join(dir, "missing.json")).expect(t, exitUsage)

		// fire validates --data against the listener's schema.
		r = run(t, "--transport", b.url, "fire", "stock.priced", "--data", `{"sku":"a","price":"12"}`).expect(t, exitFailure)
		if !strings.Contains(r.stderr, "at /price: got string, want number") || !strings.Contains(r.stderr, "alerts listens with") {
			t.Errorf("fire of invalid data: %s", r.stderr)
		}
		run(t, "--transport", b.url, "fire", "stock.priced", "--data", `[1,2,3]`).expect(t, exitFailure)
		run(t, "--transport", b.url, "fire", "stock.priced", "--data", `{"sku":"a","price":"12"}`, "--no-validate").expect(t, exitOK)
		run(t, "--transport", b.url, "fire", "stock.priced", "--data", `{"sku":"a","price":12}`).expect(t, exitOK)
		// --lines: every line is checked, and a bad one fires nothing.
		r = runIn(t, context.Background(), "{\"sku\":\"a\",\"price\":1}\n{\"sku\":\"b\",\"price\":\"2\"}\n",
			"--transport", b.url, "fire", "stock.priced", "--lines", "-").expect(t, exitFailure)
		if !strings.Contains(r.stderr, "line 2: --lines does not match the schema") || r.stdout != "" {
			t.Errorf("fire --lines of an invalid line: stdout %q, stderr %s", r.stdout, r.stderr)
		}
		r = run(t, "--transport", b.url, "fire", "stock.unknown", "--data", `{}`).expect(t, exitOK)
		if !strings.Contains(r.stderr, "not validated") {
			t.Errorf("fire of an event without a schema: %s", r.stderr)
		}
	})
}
