package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/busline/busline/transports/redisstream"
)

// transportOf returns the transport inspect --json reports for args.
func transportOf(t *testing.T, args ...string) string {
	t.Helper()
	r := run(t, append(args, "--json", "inspect")...).expect(t, exitOK)
	var doc inspectDoc
	mustJSON(t, r.stdout, &doc)
	return doc.Transport
}

// TestTransportResolution: --transport, then BUSLINE_TRANSPORT, then the
// transport of the --config file or of BUSLINE_CONFIG.
func TestTransportResolution(t *testing.T) {
	cleanEnv(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "busline.yaml")
	if err := os.WriteFile(file, []byte("service: shop\ntransport: memory://from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.yaml")
	if err := os.WriteFile(other, []byte("transport: memory://from-env-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := run(t, "inspect").expect(t, exitUsage)
	if !strings.Contains(r.stderr, "no transport: pass --transport URL, set BUSLINE_TRANSPORT") {
		t.Fatalf("stderr %q", r.stderr)
	}
	t.Setenv("BUSLINE_CONFIG", other)
	if got := transportOf(t); got != "memory://from-env-file" {
		t.Fatalf("BUSLINE_CONFIG: %s", got)
	}
	if got := transportOf(t, "--config", file); got != "memory://from-file" {
		t.Fatalf("--config: %s", got)
	}
	t.Setenv("BUSLINE_TRANSPORT", "memory://from-env")
	if got := transportOf(t, "--config", file); got != "memory://from-env" {
		t.Fatalf("BUSLINE_TRANSPORT over the file: %s", got)
	}
	if got := transportOf(t, "--config", file, "--transport", "memory://from-flag"); got != "memory://from-flag" {
		t.Fatalf("--transport: %s", got)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("transprot: memory://\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, "--config", bad, "inspect").expect(t, exitUsage)
	run(t, "--config", filepath.Join(dir, "missing.yaml"), "inspect").expect(t, exitUsage)
}

func TestExitCodes(t *testing.T) {
	cleanEnv(t)
	r := run(t, "--help").expect(t, exitOK)
	for _, c := range []string{"inspect", "tail", "dead", "fire", "bench", "Exit codes"} {
		if !strings.Contains(r.stdout, c) {
			t.Errorf("help lacks %q", c)
		}
	}
	run(t, "frobnicate").expect(t, exitUsage)
	run(t, "inspect", "--frobnicate").expect(t, exitUsage)
	run(t, "--transport", "memory://x", "dead").expect(t, exitUsage)
	run(t, "--transport", "memory://x", "dead", "list").expect(t, exitUsage)
	run(t, "--transport", "::", "inspect").expect(t, exitUsage)
	run(t, "--transport", "kafka://127.0.0.1", "inspect").expect(t, exitUsage)
	run(t, "--transport", "redis://127.0.0.1:1/0", "inspect").expect(t, exitUnavailable)
	r = run(t, "--transport", "amqp://admin:s3cret@127.0.0.1:1/", "dead", "list", "g").expect(t, exitUnavailable)
	if strings.Contains(r.stderr, "s3cret") || !strings.Contains(r.stderr, "admin:xxxxx@") {
		t.Fatalf("stderr %q", r.stderr)
	}
	r = run(t, "--transport", "redis://:s3cret@127.0.0.1:1/0", "fire", "a.b", "--data", "1").expect(t, exitUnavailable)
	if strings.Contains(r.stderr, "s3cret") {
		t.Fatalf("stderr %q", r.stderr)
	}
}

// A broker that refuses the credentials was reached: the command failed
// (1) with a hint at the URL's user and password, not "unavailable" (5).
func TestCredentialsRefused(t *testing.T) {
	eachBroker(t, func(t *testing.T, b broker) {
		var url string
		switch b.name {
		case "redis":
			url = "redis://busline-nobody:s3cret@" + redisAddr + "/0?prefix=" + b.run + ":"
		case "amqp":
			url = "amqp://guest:s3cret@" + amqpAddr + "/?exchange=" + b.run
		default:
			t.Skip("the memory transport has no credentials")
		}
		r := run(t, "--transport", url, "inspect", "--group", "shop-email").expect(t, exitFailure)
		if strings.Contains(r.stderr, "s3cret") || !strings.Contains(r.stderr, "access refused (check the user, password and permissions of the URL)") {
			t.Fatalf("stderr %q", r.stderr)
		}
	})
	// The words of an auth error in the URL itself do not make an
	// unreachable broker a refusal.
	run(t, "--transport", "redis://127.0.0.1:1/0?prefix=NOAUTH:WRONGPASS:", "inspect").expect(t, exitUnavailable)
}

// Commands open a transport without a mover of scheduled events
// (transports.OpenOptions.NoScheduleMover): the services move them, and a
// command that took the mover's lease would index the schedule for
// nothing before giving it up on exit.
func TestCommandsOpenWithoutScheduleMover(t *testing.T) {
	cleanEnv(t)
	b := redisBroker(t)
	b.available(t)
	a := &app{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}
	tr, _, err := a.openURL(context.Background(), b.url)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if !tr.(*redisstream.Transport).Options().NoScheduleMover {
		t.Fatal("a command opened Redis with a mover of scheduled events")
	}
}

// A mistyped subcommand is an unknown command with a suggestion, not a
// count of arguments.
func TestUnknownSubcommand(t *testing.T) {
	cleanEnv(t)
	for _, args := range [][]string{{"dead", "lst", "g"}, {"schema", "lst"}} {
		r := run(t, args...).expect(t, exitUsage)
		if !strings.Contains(r.stderr, `unknown command "lst"`) || !strings.Contains(r.stderr, "did you mean list?") {
			t.Errorf("busline %v: %s", args, r.stderr)
		}
	}
}
