package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
)

// deadScenario fires three orders of which two are refused, and waits
// until both are dead letters of shop-email.
func deadScenario(t *testing.T, b broker) (*shop, []string) {
	t.Helper()
	s := newShop(t, b)
	ok := s.fire(t, Order{ID: 1})
	ids := []string{s.fire(t, Order{ID: 2, Fail: true}), s.fire(t, Order{ID: 3, Fail: true})}
	eventually(t, "two dead letters", func() bool { return len(s.deadLetters(t, "shop-email")) == 2 })
	eventually(t, "the good order handled", func() bool { return s.handledCount(ok) == 1 })
	return s, ids
}

func TestDeadListShow(t *testing.T) {
	eachBroker(t, func(t *testing.T, b broker) {
		s, ids := deadScenario(t, b)
		dead := s.deadLetters(t, "shop-email")

		r := run(t, "--transport", b.url, "dead", "list", "shop-email").expect(t, exitOK)
		checkAligned(t, r.stdout)
		golden(t, "dead_list_"+b.name, r.stdout)
		for _, id := range ids {
			if !strings.Contains(r.stdout, id) {
				t.Errorf("list lacks event %s", id)
			}
		}

		r = run(t, "--transport", b.url, "--json", "dead", "list", "shop-email", "--limit", "1").expect(t, exitOK)
		var list struct {
			Group       string           `json:"group"`
			Count       int              `json:"count"`
			DeadLetters []map[string]any `json:"dead_letters"`
		}
		mustJSON(t, r.stdout, &list)
		if list.Group != "shop-email" || list.Count != 1 || len(list.DeadLetters) != 1 {
			t.Fatalf("json %+v", list)
		}
		checkKeys(t, list.DeadLetters[0], "id", "event_id", "event", "group", "attempts", "dead_at", "reason")
		if list.DeadLetters[0]["event_id"] != ids[0] || list.DeadLetters[0]["event"] != "orders.placed" ||
			list.DeadLetters[0]["reason"] != "permanent: order refused by the mail server" || list.DeadLetters[0]["attempts"] != 1.0 {
			t.Fatalf("dead letter %v", list.DeadLetters[0])
		}

		r = run(t, "--transport", b.url, "dead", "show", "shop-email", dead[1].ID).expect(t, exitOK)
		golden(t, "dead_show_"+b.name, r.stdout)

		r = run(t, "--transport", b.url, "--json", "dead", "show", "shop-email", dead[1].ID).expect(t, exitOK)
		var one map[string]any
		mustJSON(t, r.stdout, &one)
		checkKeys(t, one, "id", "event_id", "event", "group", "attempts", "dead_at", "reason", "metadata", "payload")
		if p, _ := one["payload"].(map[string]any); p["id"] != 3.0 || p["fail"] != true {
			t.Fatalf("payload %v", one["payload"])
		}
		if md, _ := one["metadata"].(map[string]any); md["ce-type"] != "orders.placed" {
			t.Fatalf("metadata %v", one["metadata"])
		}

		r = run(t, "--transport", b.url, "dead", "show", "shop-email", "no-such-id").expect(t, exitNotFound)
		if !strings.Contains(r.stderr, `no dead letter "no-such-id" in group shop-email`) {
			t.Fatalf("stderr %q", r.stderr)
		}
		// A group the broker does not know is not found (TestDeadListUnknownGroup).
		run(t, "--transport", b.url, "dead", "list", "shop-nobody").expect(t, exitNotFound)
		run(t, "--transport", b.url, "--json", "dead", "list", "shop-nobody").expect(t, exitNotFound)
	})
}

func TestDeadReplayPurge(t *testing.T) {
	eachBroker(t, func(t *testing.T, b broker) {
		s, ids := deadScenario(t, b)
		dead := s.deadLetters(t, "shop-email")
		s.acceptAll()

		run(t, "--transport", b.url, "dead", "replay", "shop-email").expect(t, exitUsage)
		run(t, "--transport", b.url, "dead", "replay", "shop-email", dead[0].ID, "--all").expect(t, exitUsage)
		run(t, "--transport", b.url, "dead", "replay", "shop-email", "no-such-id").expect(t, exitNotFound)

		// One, by ID: handled again with its original event ID.
		r := run(t, "--transport", b.url, "dead", "replay", "shop-email", dead[0].ID).expect(t, exitOK)
		if want := "Replayed dead letter " + dead[0].ID + " (event " + ids[0] + ") to group shop-email.\n"; r.stdout != want {
			t.Fatalf("stdout %q, want %q", r.stdout, want)
		}
		eventually(t, "the replayed event handled", func() bool { return s.handledCount(ids[0]) == 1 })
		if left := s.deadLetters(t, "shop-email"); len(left) != 1 || left[0].ID != dead[1].ID {
			t.Fatalf("left %v", left)
		}

		// Purge needs --yes.
		r = run(t, "--transport", b.url, "dead", "purge", "shop-email").expect(t, exitUsage)
		if !strings.Contains(r.stderr, "refusing to delete the 1 dead letters of group shop-email without --yes") {
			t.Fatalf("stderr %q", r.stderr)
		}
		if len(s.deadLetters(t, "shop-email")) != 1 {
			t.Fatal("purge without --yes deleted")
		}

		// All.
		r = run(t, "--transport", b.url, "--json", "dead", "replay", "shop-email", "--all").expect(t, exitOK)
		var doc struct {
			Group    string              `json:"group"`
			Count    int                 `json:"count"`
			Replayed []map[string]string `json:"replayed"`
		}
		mustJSON(t, r.stdout, &doc)
		if doc.Group != "shop-email" || doc.Count != 1 || doc.Replayed[0]["event_id"] != ids[1] || doc.Replayed[0]["id"] != dead[1].ID {
			t.Fatalf("json %s", r.stdout)
		}
		eventually(t, "the second replayed event handled", func() bool { return s.handledCount(ids[1]) == 1 })

		// Purge with --yes.
		msg := message.NewMessage("order-9", []byte(`{"id":9}`))
		msg.Metadata.Set("ce-type", "orders.placed")
		if err := s.Transport().(transports.DeadLetterer).DeadLetter(context.Background(), "shop-email", msg, "by hand", 3); err != nil {
			t.Fatal(err)
		}
		r = run(t, "--transport", b.url, "dead", "purge", "shop-email", "--yes").expect(t, exitOK)
		if r.stdout != "Purged 1 dead letters of group shop-email.\n" {
			t.Fatalf("stdout %q", r.stdout)
		}
		if n := len(s.deadLetters(t, "shop-email")); n != 0 {
			t.Fatalf("%d dead letters left after purge", n)
		}
		r = run(t, "--transport", b.url, "--json", "dead", "purge", "shop-email", "--yes").expect(t, exitOK)
		var purged map[string]any
		mustJSON(t, r.stdout, &purged)
		checkKeys(t, purged, "group", "purged")
		if purged["purged"] != 0.0 {
			t.Fatalf("second purge: %v", purged)
		}
	})
}

func mustJSON(t *testing.T, s string, v any) {
	t.Helper()
	if strings.Count(strings.TrimSpace(s), "\n{") > 0 && !strings.HasPrefix(s, "{\n") {
		t.Fatalf("more than one JSON document: %s", s)
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%v in %s", err, s)
	}
	if dec.More() {
		t.Fatalf("more than one JSON document: %s", s)
	}
}

// checkKeys fails unless m has exactly keys.
func checkKeys(t *testing.T, m map[string]any, keys ...string) {
	t.Helper()
	if len(m) != len(keys) {
		t.Errorf("keys of %v, want %v", m, keys)
	}
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("%v lacks %q", m, k)
		}
	}
}
