package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestInspectScheduled: events fired with --delay are counted per event
// name with their next due time, in the table and in --json.
func TestInspectScheduled(t *testing.T) {
	eachBroker(t, func(t *testing.T, b broker) {
		if b.name == "amqp" {
			// RabbitMQ cannot count them per event: inspect says so.
			r := run(t, inspectArgs(b)...).expect(t, exitOK)
			if !strings.Contains(r.stdout, "scheduled events (fired with a delay) are not counted") {
				t.Fatalf("no note on scheduled events:\n%s", r.stdout)
			}
			// and --json says null (not counted), not [] (none).
			r = run(t, inspectArgs(b, "--json")...).expect(t, exitOK)
			var raw map[string]json.RawMessage
			mustJSON(t, r.stdout, &raw)
			if s, ok := raw["scheduled"]; !ok || string(s) != "null" {
				t.Fatalf("inspect --json on AMQP: want \"scheduled\": null:\n%s", r.stdout)
			}
			return
		}
		before := time.Now()
		run(t, "--transport", b.url, "fire", "orders.placed", "--data", `{"id":1}`, "--delay", "2h").expect(t, exitOK)
		run(t, "--transport", b.url, "fire", "orders.placed", "--data", `{"id":2}`, "--delay", "1h").expect(t, exitOK)

		r := run(t, inspectArgs(b)...).expect(t, exitOK)
		checkAligned(t, r.stdout)
		if !strings.Contains(r.stdout, "SCHEDULED") || !strings.Contains(r.stdout, "orders.placed") {
			t.Fatalf("no scheduled table:\n%s", r.stdout)
		}

		r = run(t, inspectArgs(b, "--json")...).expect(t, exitOK)
		var doc inspectDoc
		mustJSON(t, r.stdout, &doc)
		if len(doc.Scheduled) != 1 || doc.Scheduled[0].Event != "orders.placed" || doc.Scheduled[0].Count != 2 {
			t.Fatalf("scheduled %+v", doc.Scheduled)
		}
		due, err := time.Parse(time.RFC3339Nano, doc.Scheduled[0].NextDue)
		if err != nil || due.Before(before.Add(time.Hour-time.Second)) || due.After(time.Now().Add(time.Hour+time.Second)) {
			t.Fatalf("next due %q, want about an hour from now (%v)", doc.Scheduled[0].NextDue, err)
		}
	})
}
