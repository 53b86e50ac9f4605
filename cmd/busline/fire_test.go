package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/busline/busline/bus"
)

var uuidV7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestFire fires with the command and checks what a listener gets: the
// ID printed, the raw payload, the Busline envelope.
func TestFire(t *testing.T) {
	eachBroker(t, func(t *testing.T, b broker) {
		got := make(chan bus.Delivery[json.RawMessage], 4)
		bs, err := bus.New(bus.Config{Service: "shop", Process: "p1", Transport: b.url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = bs.Close() })
		ev := bus.NewEvent[json.RawMessage]("orders", "placed")
		if err := bus.Listen(bs, ev, "audit", func(_ context.Context, d bus.Delivery[json.RawMessage]) error {
			got <- d
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := bs.Start(context.Background()); err != nil {
			t.Fatal(err)
		}

		r := run(t, "--transport", b.url, "fire", "orders.placed", "--data", `{"id": 7, "items": ["a"]}`).expect(t, exitOK)
		id := strings.TrimSpace(r.stdout)
		if !uuidV7.MatchString(id) {
			t.Fatalf("stdout %q is not a UUIDv7", r.stdout)
		}
		d := <-got
		if d.ID != id || d.Event != "orders.placed" || string(d.Payload) != `{"id":7,"items":["a"]}` {
			t.Fatalf("delivery %+v", d)
		}
		for k, want := range map[string]string{
			"ce-id": id, "ce-type": "orders.placed", "ce-source": "/busline",
			"ce-specversion": "1.0", "content-type": "application/json",
		} {
			if d.Metadata[k] != want {
				t.Errorf("metadata %s = %q, want %q", k, d.Metadata[k], want)
			}
		}

		// --json, a payload from stdin, a given ID, the service from the environment.
		t.Setenv("BUSLINE_SERVICE", "ops")
		r = runIn(t, context.Background(), `[1,2]`, "--transport", b.url, "--json", "fire", "orders.placed", "--data", "-", "--id", "order-42").expect(t, exitOK)
		var doc map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
			t.Fatalf("%v: %s", err, r.stdout)
		}
		if len(doc) != 2 || doc["id"] != "order-42" || doc["event"] != "orders.placed" {
			t.Fatalf("json %v", doc)
		}
		d = <-got
		if d.ID != "order-42" || string(d.Payload) != `[1,2]` || d.Metadata["ce-source"] != "/ops" {
			t.Fatalf("delivery %+v", d)
		}
	})
}

func TestFireUsage(t *testing.T) {
	cleanEnv(t)
	url := memoryBroker(t).url
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--transport", url, "fire", "orders.placed", "--data", `{"id":`}, "not valid JSON"},
		{[]string{"--transport", url, "fire", "orders.placed", "--data", ``}, "not valid JSON"},
		{[]string{"--transport", url, "fire", "orders.placed"}, "needs --data"},
		{[]string{"--transport", url, "fire", "Orders.Placed", "--data", `1`}, "lower snake case"},
		{[]string{"--transport", url, "fire", "placed", "--data", `1`}, "want {api}.{name}"},
		{[]string{"--transport", url, "fire", "--data", `1`}, "takes 1 argument"},
		{[]string{"--transport", url, "fire", "orders.placed", "--data", `1`, "--id", ""}, "--id must not be empty"},
		{[]string{"fire", "orders.placed", "--data", `1`}, "no transport"},
		{[]string{"--transport", "kafka://x", "fire", "orders.placed", "--data", `1`}, "unknown URL scheme"},
	} {
		r := run(t, tc.args...).expect(t, exitUsage)
		if !strings.Contains(r.stderr, tc.msg) || r.stdout != "" {
			t.Errorf("%v: stderr %q, want %q", tc.args, r.stderr, tc.msg)
		}
	}
}
