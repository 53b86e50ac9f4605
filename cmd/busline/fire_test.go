package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/busline/busline/bus"
)

var uuidV7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// rawListener starts a bus of service "shop" on url whose listener "audit"
// sends every delivery of the event api.name to the channel it returns.
func rawListener(t *testing.T, url, api, name string) <-chan bus.Delivery[json.RawMessage] {
	t.Helper()
	got := make(chan bus.Delivery[json.RawMessage], 16)
	bs, err := bus.New(bus.Config{Service: "shop", Process: "p1", Transport: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bs.Close() })
	ev := bus.NewEvent[json.RawMessage](api, name)
	if err := bus.Listen(bs, ev, "audit", func(_ context.Context, d bus.Delivery[json.RawMessage]) error {
		got <- d
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := bs.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestFire fires with the command and checks what a listener gets: the
// ID printed, the raw payload, the Busline envelope.
func TestFire(t *testing.T) {
	eachBroker(t, func(t *testing.T, b broker) {
		got := rawListener(t, b.url, "orders", "placed")

		r := run(t, "--transport", b.url, "fire", "orders.placed", "--data", `{"id": 7, "items": ["a"]}`).expect(t, exitOK)
		id := strings.TrimSpace(r.stdout)
		if !uuidV7.MatchString(id) {
			t.Fatalf("stdout %q is not a UUIDv7", r.stdout)
		}
		// On memory, a note on stderr (stdout stays the ID alone).
		if noted := strings.Contains(r.stderr, "memory:// brokers live inside one process"); noted != (b.name == "memory") {
			t.Errorf("%s: stderr %q", b.name, r.stderr)
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

// TestFireLines fires a JSON Lines file and checks that the listener gets
// every line, under the IDs printed in line order.
func TestFireLines(t *testing.T) {
	eachBroker(t, func(t *testing.T, b broker) {
		got := rawListener(t, b.url, "orders", "imported")
		file := filepath.Join(t.TempDir(), "orders.jsonl")
		if err := os.WriteFile(file, []byte("\xef\xbb\xbf{\"id\": 1}\r\n\r\n  [2]  \n\"three\""), 0o600); err != nil {
			t.Fatal(err)
		}
		r := run(t, "--transport", b.url, "fire", "orders.imported", "--lines", file).expect(t, exitOK)
		ids := strings.Fields(r.stdout)
		if len(ids) != 3 || !uuidV7.MatchString(ids[0]) || ids[0] == ids[1] || ids[1] == ids[2] {
			t.Fatalf("stdout %q, want 3 distinct IDs", r.stdout)
		}
		want := map[string]string{ids[0]: `{"id":1}`, ids[1]: `[2]`, ids[2]: `"three"`}
		for range 3 {
			d := <-got
			if want[d.ID] != string(d.Payload) {
				t.Errorf("delivery %s: payload %s, want %s", d.ID, d.Payload, want[d.ID])
			}
			delete(want, d.ID)
		}
		// --json: one object per line, with the line number.
		r = runIn(t, context.Background(), "{\"id\":4}\n", "--transport", b.url, "--json", "fire", "orders.imported", "--lines", "-").expect(t, exitOK)
		var doc struct {
			ID    string `json:"id"`
			Event string `json:"event"`
			Line  int    `json:"line"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || doc.Event != "orders.imported" || doc.Line != 1 || !uuidV7.MatchString(doc.ID) {
			t.Fatalf("--json output %q: %+v, %v", r.stdout, doc, err)
		}
		if d := <-got; d.ID != doc.ID {
			t.Fatalf("delivery %s, want %s", d.ID, doc.ID)
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
		{[]string{"--transport", url, "fire", "orders.placed", "--data", `1`, "--lines", "-"}, "not both"},
		{[]string{"--transport", url, "fire", "orders.placed", "--lines", "-", "--id", "x"}, "cannot go with --lines"},
		{[]string{"--transport", url, "fire", "orders.placed", "--lines", "/nonexistent/file.jsonl"}, "--lines: open"},
		{[]string{"fire", "orders.placed", "--data", `1`}, "no transport"},
		{[]string{"--transport", "kafka://x", "fire", "orders.placed", "--data", `1`}, "unknown URL scheme"},
	} {
		r := run(t, tc.args...).expect(t, exitUsage)
		if !strings.Contains(r.stderr, tc.msg) || r.stdout != "" {
			t.Errorf("%v: stderr %q, want %q", tc.args, r.stderr, tc.msg)
		}
	}
	big := func(n int) string { return `"` + strings.Repeat("x", n) + `"` }
	for stdin, msg := range map[string]string{
		"1\n{\"id\":\n":                  "line 2 is not valid JSON",
		"\n  \n":                         "no payload in stdin",
		"1\n" + big(1_050_000) + "\n3\n": "line 2 is a payload of 1050002 bytes once encoded, the maximum is 1048576",
		// JSON escapes < as \u003c: the encoded payload is what counts,
		// checked before the first of 1,001 lines is fired.
		strings.Repeat("1\n", 1001) + `"` + strings.Repeat("<", 200_000) + `"` + "\n": "line 1002 is a payload of 1200002 bytes once encoded",
		"1\n\n" + big(1_200_000) + "\n":                                               "line 3 is longer than the largest payload",
	} {
		r := runIn(t, context.Background(), stdin, "--transport", url, "fire", "orders.placed", "--lines", "-").expect(t, exitUsage)
		if !strings.Contains(r.stderr, msg) || r.stdout != "" {
			t.Errorf("--lines of %.40q: stderr %.200q, want %q", stdin, r.stderr, msg)
		}
	}
}
