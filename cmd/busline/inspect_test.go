package main

import (
	"strings"
	"testing"
)

// inspectArgs are the arguments of inspect on b: AMQP needs the groups named.
func inspectArgs(b broker, extra ...string) []string {
	args := []string{"--transport", b.url}
	args = append(args, extra...)
	args = append(args, "inspect")
	if b.name == "amqp" {
		args = append(args, "--group", "shop-email")
	}
	return args
}

// TestInspect: two dead letters, one handled event and, once the service
// stopped, one event nobody read yet.
func TestInspect(t *testing.T) {
	eachBroker(t, func(t *testing.T, b broker) {
		s, _ := deadScenario(t, b)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		run(t, "--transport", b.url, "fire", "orders.placed", "--data", `{"id":4}`).expect(t, exitOK)

		r := run(t, inspectArgs(b)...).expect(t, exitOK)
		checkAligned(t, r.stdout)
		golden(t, "inspect_"+b.name, r.stdout)

		r = run(t, inspectArgs(b, "--json")...).expect(t, exitOK)
		var doc inspectDoc
		mustJSON(t, r.stdout, &doc)
		if strings.Contains(doc.Transport, "guest:guest") {
			t.Fatalf("password printed: %s", doc.Transport)
		}
		if len(doc.Groups) != 1 {
			t.Fatalf("groups %+v", doc.Groups)
		}
		g := doc.Groups[0]
		if g.Group != "shop-email" || g.DeadLetters != 2 || g.Lag == nil || *g.Lag != 1 {
			t.Fatalf("group %+v", g)
		}
		switch b.name {
		case "amqp":
			if len(doc.Streams) != 0 || g.Pending != nil || g.OldestPendingMS != nil || g.Queue != b.run+".shop-email" {
				t.Fatalf("amqp %+v", doc)
			}
		default:
			if len(doc.Streams) != 1 || doc.Streams[0].Event != "orders.placed" || doc.Streams[0].Length != 4 ||
				doc.Streams[0].Groups != 1 || doc.Streams[0].LastEventAt == nil {
				t.Fatalf("streams %+v", doc.Streams)
			}
			if g.Event != "orders.placed" || g.Pending == nil || *g.Pending != 0 || g.OldestPendingMS != nil ||
				g.Consumers != 1 || len(g.Members) != 1 || g.Members[0].Name != "p1" {
				t.Fatalf("group %+v", g)
			}
		}

		// Filters.
		r = run(t, "--transport", b.url, "--json", "inspect", "--group", "shop-nobody").expect(t, exitOK)
		mustJSON(t, r.stdout, &doc)
		if len(doc.Groups) != 0 {
			t.Fatalf("groups %+v", doc.Groups)
		}
		if b.name != "amqp" {
			r = run(t, "--transport", b.url, "--json", "inspect", "--event", "orders.cancelled").expect(t, exitOK)
			mustJSON(t, r.stdout, &doc)
			if len(doc.Streams)+len(doc.Groups) != 0 {
				t.Fatalf("filtered %+v", doc)
			}
		}
	})
}

// TestInspectPending holds an event in a handler and checks pending and
// the age of the oldest pending event.
func TestInspectPending(t *testing.T) {
	eachBroker(t, func(t *testing.T, b broker) {
		block, started := make(chan struct{}), make(chan string, 1)
		s := newShop(t, b, func(s *shop) { s.block, s.started = block, started })
		t.Cleanup(func() { close(block) })
		s.fire(t, Order{ID: 1})
		<-started
		r := run(t, inspectArgs(b, "--json")...).expect(t, exitOK)
		var doc inspectDoc
		mustJSON(t, r.stdout, &doc)
		g := doc.Groups[0]
		if g.Consumers != 1 {
			t.Fatalf("group %+v", g)
		}
		if b.name == "amqp" {
			return // AMQP reports no unacknowledged deliveries
		}
		if g.Pending == nil || *g.Pending != 1 || g.OldestPendingMS == nil || *g.OldestPendingMS < 0 ||
			len(g.Members) != 1 || g.Members[0].Pending != 1 {
			t.Fatalf("group %+v", g)
		}
	})
}

func TestInspectUsage(t *testing.T) {
	cleanEnv(t)
	run(t, "--transport", memoryBroker(t).url, "inspect", "--event", "NotAnEvent").expect(t, exitUsage)
	run(t, "--transport", memoryBroker(t).url, "inspect", "extra").expect(t, exitUsage)
	b := amqpBroker(t)
	b.available(t)
	r := run(t, "--transport", b.url, "inspect").expect(t, exitUnsupported)
	if !strings.Contains(r.stderr, "name the consumer groups") || strings.Contains(r.stderr, "guest:guest") {
		t.Fatalf("stderr %q", r.stderr)
	}
}
