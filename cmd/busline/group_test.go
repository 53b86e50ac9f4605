package main

import (
	"strings"
	"testing"
)

// group remove: refused without --yes, refused while the listener reads
// the group, done once it stopped (--force: a Redis consumer that read
// within the last minute looks in use), then the group is not found.
func TestGroupRemove(t *testing.T) {
	eachBroker(t, func(t *testing.T, b broker) {
		s := newShop(t, b)
		id := s.fire(t, Order{ID: 1})
		s.fire(t, Order{ID: 2, Fail: true})
		eventually(t, "the order handled", func() bool { return s.handledCount(id) == 1 })
		eventually(t, "the refused order dead-lettered", func() bool { return len(s.deadLetters(t, "shop-email")) == 1 })
		dead := s.deadLetters(t, "shop-email")[0]

		run(t, "--transport", b.url, "group", "remove", "shop-email").expect(t, exitUsage)
		var r result
		eventually(t, "the group refused while read", func() bool {
			r = run(t, "--transport", b.url, "group", "remove", "shop-email", "--yes")
			return r.code == exitFailure && strings.Contains(r.stderr, "in use")
		})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		r = run(t, "--transport", b.url, "--json", "group", "remove", "shop-email", "--yes", "--force").expect(t, exitOK)
		var doc map[string]any
		mustJSON(t, r.stdout, &doc)
		if doc["group"] != "shop-email" || doc["removed"] != true {
			t.Fatalf("json %v", doc)
		}
		// Its dead letter is kept, and a replay to a group that no longer
		// reads the event is refused and keeps it.
		r = run(t, "--transport", b.url, "dead", "replay", "shop-email", dead.ID).expect(t, exitNotFound)
		if !strings.Contains(r.stderr, "no longer reads") {
			t.Errorf("refused replay: stderr %q", r.stderr)
		}
		run(t, "--transport", b.url, "dead", "show", "shop-email", dead.ID).expect(t, exitOK)
		r = run(t, "--transport", b.url, "group", "remove", "shop-email", "--yes").expect(t, exitNotFound)
		if !strings.Contains(r.stderr, "shop-email") {
			t.Errorf("stderr %q does not name the group", r.stderr)
		}
		run(t, "--transport", b.url, "group", "remove", "shop-email", "--yes", "--dead-letters").expect(t, exitOK)
		run(t, "--transport", b.url, "dead", "list", "shop-email").expect(t, exitNotFound)
	})
}
