package main

import (
	"strings"
	"testing"
)

// dead list of a group the broker does not know exits 3; of a group that
// exists with no dead letters, 0.
func TestDeadListUnknownGroup(t *testing.T) {
	eachBroker(t, func(t *testing.T, b broker) {
		newShop(t, b) // creates and owns shop-email
		r := run(t, "--transport", b.url, "dead", "list", "shop-emial").expect(t, exitNotFound)
		if !strings.Contains(r.stderr, `no consumer group "shop-emial"`) {
			t.Errorf("stderr %q", r.stderr)
		}
		run(t, "--transport", b.url, "--json", "dead", "list", "nope-nope").expect(t, exitNotFound)
		r = run(t, "--transport", b.url, "dead", "list", "shop-email").expect(t, exitOK)
		if !strings.Contains(r.stdout, "No dead letters in group shop-email") {
			t.Errorf("stdout %q", r.stdout)
		}
		// So do replay --all and purge, with or without --yes: a mistyped
		// group in a script is not "0 replayed" or "0 purged".
		for _, args := range [][]string{
			{"dead", "replay", "shop-emial", "--all"},
			{"dead", "purge", "shop-emial", "--yes"},
			{"dead", "purge", "shop-emial"},
		} {
			r = run(t, append([]string{"--transport", b.url}, args...)...).expect(t, exitNotFound)
			if !strings.Contains(r.stderr, `no consumer group "shop-emial"`) {
				t.Errorf("%v: stderr %q", args, r.stderr)
			}
		}
		r = run(t, "--transport", b.url, "dead", "purge", "shop-email", "--yes").expect(t, exitOK)
		if r.stdout != "Purged 0 dead letters of group shop-email.\n" {
			t.Errorf("purge of a known group: stdout %q", r.stdout)
		}
		run(t, "--transport", b.url, "dead", "replay", "shop-email", "--all").expect(t, exitOK)
	})
}

func TestVersion(t *testing.T) {
	cleanEnv(t)
	r := run(t, "--version").expect(t, exitOK)
	if !strings.HasPrefix(r.stdout, "busline ") || !strings.Contains(r.stdout, "go1.") {
		t.Fatalf("stdout %q", r.stdout)
	}
}

// Shell completion completes group and event names from the broker.
func TestCompletion(t *testing.T) {
	eachBroker(t, func(t *testing.T, b broker) {
		s := newShop(t, b)
		s.fire(t, Order{ID: 1})
		r := run(t, "--transport", b.url, "__complete", "dead", "list", "shop-").expect(t, exitOK)
		if !strings.Contains(r.stdout, "shop-email\n") {
			t.Errorf("groups: %q", r.stdout)
		}
		r = run(t, "--transport", b.url, "__complete", "inspect", "--group", "").expect(t, exitOK)
		if !strings.Contains(r.stdout, "shop-email\n") {
			t.Errorf("--group: %q", r.stdout)
		}
		if b.name != "amqp" { // AMQP cannot list the events it routes
			r = run(t, "--transport", b.url, "__complete", "tail", "ord").expect(t, exitOK)
			if !strings.Contains(r.stdout, "orders.placed\n") {
				t.Errorf("events: %q", r.stdout)
			}
		}
		for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
			if r := run(t, "completion", shell).expect(t, exitOK); len(r.stdout) < 100 {
				t.Errorf("completion %s: %q", shell, r.stdout)
			}
		}
	})
}
