package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/busline/busline/internal/syncbuf"
)

// started is a command running in the background.
type started struct {
	out, err *syncbuf.Buffer
	code     chan int
	cancel   context.CancelFunc
}

func startCommand(t *testing.T, args ...string) *started {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &started{out: &syncbuf.Buffer{}, err: &syncbuf.Buffer{}, code: make(chan int, 1), cancel: cancel}
	go func() { s.code <- execute(ctx, args, strings.NewReader(""), s.out, s.err) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.code:
		case <-time.After(10 * time.Second):
			t.Error("command did not stop")
		}
	})
	return s
}

// ready waits until the command says it follows the event.
func (s *started) ready(t *testing.T) {
	t.Helper()
	eventually(t, "tail to be ready", func() bool {
		select {
		case c := <-s.code:
			s.code <- c
			t.Fatalf("exited with %d: %s", c, s.err.String())
		default:
		}
		return strings.Contains(s.err.String(), "Following ")
	})
}

func (s *started) wait(t *testing.T) int {
	t.Helper()
	select {
	case c := <-s.code:
		s.code <- c
		return c
	case <-time.After(15 * time.Second):
		t.Fatalf("command did not end; stdout:\n%s\nstderr:\n%s", s.out.String(), s.err.String())
	}
	return -1
}

func TestTailFollows(t *testing.T) {
	eachBroker(t, func(t *testing.T, b broker) {
		s := newShop(t, b) // a listener that must not miss anything because of tail
		before := s.fire(t, Order{ID: 0})
		eventually(t, "the first event handled", func() bool { return s.handledCount(before) == 1 })

		tl := startCommand(t, "--transport", b.url, "tail", "orders.placed", "-n", "2")
		tl.ready(t)
		ids := []string{s.fire(t, Order{ID: 1}), s.fire(t, Order{ID: 2})}
		if c := tl.wait(t); c != exitOK {
			t.Fatalf("exit %d: %s", c, tl.err.String())
		}
		out := tl.out.String()
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 || !strings.Contains(lines[0], ids[0]) || !strings.Contains(lines[1], ids[1]) || strings.Contains(out, before) {
			t.Fatalf("tail printed:\n%s", out)
		}
		golden(t, "tail", out)
		if !strings.Contains(tl.err.String(), "from now") || strings.Contains(tl.err.String(), "guest:guest") {
			t.Fatalf("stderr %q", tl.err.String())
		}
		if noted := strings.Contains(tl.err.String(), "memory:// brokers live inside one process"); noted != (b.name == "memory") {
			t.Errorf("%s: stderr %q", b.name, tl.err.String())
		}
		for _, id := range ids {
			eventually(t, "the listener to handle "+id, func() bool { return s.handledCount(id) == 1 })
		}

		// Interrupted: exit 0, --json lines.
		tl = startCommand(t, "--transport", b.url, "--json", "tail", "orders.placed")
		tl.ready(t)
		id := s.fire(t, Order{ID: 3})
		eventually(t, "the JSON line", func() bool { return strings.Contains(tl.out.String(), "\n") })
		tl.cancel()
		if c := tl.wait(t); c != exitOK {
			t.Fatalf("exit %d after interrupt: %s", c, tl.err.String())
		}
		var doc map[string]any
		if err := json.Unmarshal([]byte(tl.out.String()), &doc); err != nil {
			t.Fatalf("%v: %s", err, tl.out.String())
		}
		checkKeys(t, doc, "event", "id", "position", "at", "fired_at", "metadata", "payload")
		if doc["id"] != id || doc["event"] != "orders.placed" || doc["payload"].(map[string]any)["id"] != 3.0 {
			t.Fatalf("json %v", doc)
		}

		// No group was joined: the broker still knows only shop-email.
		r := run(t, inspectArgs(b, "--json")...).expect(t, exitOK)
		var in inspectDoc
		mustJSON(t, r.stdout, &in)
		if len(in.Groups) != 1 || in.Groups[0].Group != "shop-email" {
			t.Fatalf("groups after tail: %+v", in.Groups)
		}
	})
}

func TestTailSince(t *testing.T) {
	eachBroker(t, func(t *testing.T, b broker) {
		s := newShop(t, b)
		ids := []string{s.fire(t, Order{ID: 1}), s.fire(t, Order{ID: 2}), s.fire(t, Order{ID: 3})}
		for _, since := range []string{"beginning", "1h", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)} {
			r := run(t, "--transport", b.url, "tail", "orders.placed", "--since", since, "-n", "3")
			if b.name == "amqp" {
				r.expect(t, exitUnsupported)
				if !strings.Contains(r.stderr, "AMQP keeps no history") {
					t.Fatalf("stderr %q", r.stderr)
				}
				continue
			}
			r.expect(t, exitOK)
			lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
			if len(lines) != 3 {
				t.Fatalf("--since %s printed:\n%s", since, r.stdout)
			}
			for i, id := range ids {
				if !strings.Contains(lines[i], id) {
					t.Fatalf("--since %s line %d: %s", since, i, lines[i])
				}
			}
		}
	})
}

func TestTailUsage(t *testing.T) {
	cleanEnv(t)
	url := memoryBroker(t).url
	run(t, "--transport", url, "tail").expect(t, exitUsage)
	run(t, "--transport", url, "tail", "orders").expect(t, exitUsage)
	run(t, "--transport", url, "tail", "orders.placed", "--since", "yesterday").expect(t, exitUsage)
	run(t, "--transport", url, "tail", "orders.placed", "--since", "-5m").expect(t, exitUsage)
	run(t, "--transport", url, "tail", "orders.placed", "-n", "-1").expect(t, exitUsage)
}
