package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// planted is the secret every URL of TestNoSecretInOutput carries; no
// output of any command may contain it.
const planted = "Pl4nted5ecret"

// secretURLs returns transport URLs with the planted secret in every
// position: userinfo password, a lone user name, each secret-bearing query
// parameter, and an URL that does not parse.
func secretURLs(mem string) []string {
	urls := []string{
		"memory://u:" + planted + "@" + mem,
		"redis://:" + planted + "@127.0.0.1:1/0",
		"rediss://u:" + planted + "@127.0.0.1:1/0",
		"amqp://guest:" + planted + "@127.0.0.1:1/",
		"amqp://" + planted + "@127.0.0.1:1/",
		"redis://u:" + planted + " x@127.0.0.1:1/0",
		"amqp://g:" + planted + "@127.0.0.1:bad/",
	}
	for _, k := range []string{"password", "sentinel_password", "sslpassword", "token", "secret", "key", "access_key", "api_key", "Password"} {
		urls = append(urls,
			"memory://"+mem+"?"+k+"="+planted,
			// A Redis that is no Sentinel answers at once.
			"redis://127.0.0.1:6379/0?master_name=m&"+k+"="+planted,
			"redis://127.0.0.1:1/0?"+k+"="+planted,
			"amqp://guest:guest@127.0.0.1:1/?"+k+"="+planted,
		)
	}
	return urls
}

// TestNoSecretInOutput runs every command against URLs with a planted
// secret, given by --transport, BUSLINE_TRANSPORT and a configuration
// file, and greps stdout and stderr (logs included), tables and --json.
func TestNoSecretInOutput(t *testing.T) {
	cleanEnv(t)
	mem := randomName()
	commands := [][]string{
		{"inspect"},
		{"--json", "inspect"},
		{"tail", "a.b", "-n", "1"},
		{"--json", "tail", "a.b", "-n", "1"},
		{"dead", "list", "shop-email"},
		{"--json", "dead", "list", "shop-email"},
		{"dead", "show", "shop-email", "0190b3a2-0000-7000-8000-000000000000"},
		{"dead", "replay", "shop-email", "--all"},
		{"dead", "purge", "shop-email", "--yes"},
		{"fire", "a.b", "--data", "{}"},
		{"--json", "fire", "a.b", "--data", "{}"},
		{"bench", "--events", "5", "--size", "64", "--concurrency", "1"},
		{"--json", "bench", "--events", "5", "--size", "64", "--concurrency", "1"},
		{"schema"},
		{"--json", "schema", "list"},
		{"schema", "show", "a.b"},
		{"schema", "export", "--service", "shop"},
		{"schema", "check", "/nonexistent/schemas.json"},
		{"dashboard", "--listen", "127.0.0.1:0"}, // serves until the run's deadline
	}
	check := func(t *testing.T, how string, args []string, r result) {
		t.Helper()
		for name, out := range map[string]string{"stdout": r.stdout, "stderr": r.stderr} {
			if strings.Contains(out, planted) {
				t.Errorf("%s %v: the secret is in %s:\n%s", how, args, name, out)
			}
		}
	}
	urls := secretURLs(mem)
	t.Run("commands", func(t *testing.T) {
		for _, u := range urls {
			cmds := commands
			if strings.Contains(u, "127.0.0.1:1/0") {
				// go-redis retries an unreachable server for a while: the
				// commands open the transport the same way, a few suffice.
				cmds = [][]string{{"--json", "inspect"}, {"tail", "a.b"}, {"dead", "list", "g"}, {"fire", "a.b", "--data", "{}"}}
			}
			t.Run("", func(t *testing.T) {
				t.Parallel()
				for _, args := range cmds {
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					check(t, u, args, runIn(t, ctx, "", append([]string{"--transport", u}, args...)...))
					cancel()
				}
			})
		}
	})
	dir := t.TempDir()
	for i, u := range urls {
		if strings.Contains(u, "127.0.0.1:1/0?") {
			continue // slow to fail, and the same code as the other unreachable Redis URLs
		}
		// The same URL from the environment and from a configuration file.
		t.Setenv("BUSLINE_TRANSPORT", u)
		check(t, "BUSLINE_TRANSPORT="+u, []string{"inspect"}, run(t, "--json", "inspect"))
		t.Setenv("BUSLINE_TRANSPORT", "")
		file := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(file, []byte("transport: \""+u+"\"\nidempotency: \""+u+"\"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		check(t, "config "+u, []string{"inspect"}, run(t, "--config", file, "inspect"))
		if i == 0 {
			// A URL that opens: the table and the JSON show it, redacted.
			r := run(t, "--transport", u, "inspect").expect(t, exitOK)
			if !strings.Contains(r.stdout, "u:xxxxx@"+mem) {
				t.Errorf("inspect does not show the redacted URL:\n%s", r.stdout)
			}
		}
	}
}
