package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
)

// The dashboard refuses a refresh or stale period that is not positive
// instead of quietly using the default.
func TestDashboardPeriodsMustBePositive(t *testing.T) {
	cleanEnv(t)
	for _, flag := range []string{"--refresh=0s", "--refresh=-1s", "--stale=0s"} {
		r := run(t, "--transport", "memory://periods", "dashboard", flag).expect(t, exitUsage)
		if !strings.Contains(r.stderr, "positive duration") {
			t.Errorf("dashboard %s: %s", flag, r.stderr)
		}
	}
}

// A dashboard on every interface is announced at an address a browser can
// open.
func TestServedAt(t *testing.T) {
	for addr, want := range map[*net.TCPAddr]string{
		{IP: net.IPv6unspecified, Port: 18097}:   "http://127.0.0.1:18097/ (and every other address of this host)",
		{IP: net.IPv4zero, Port: 18097}:          "http://127.0.0.1:18097/ (and every other address of this host)",
		{IP: net.IPv4(127, 0, 0, 1), Port: 8089}: "http://127.0.0.1:8089/",
	} {
		if got := servedAt(addr); got != want {
			t.Errorf("servedAt(%v) = %q, want %q", addr, got, want)
		}
	}
}

// A delay beyond what the transports schedule is a usage error.
func TestFireDelayTooLong(t *testing.T) {
	cleanEnv(t)
	for _, args := range [][]string{{"--data", `{}`}, {"--lines", "-"}} {
		r := runIn(t, context.Background(), "{}\n", append([]string{"--transport", "memory://delay", "fire", "orders.placed", "--delay", "800h"}, args...)...).expect(t, exitUsage)
		if !strings.Contains(r.stderr, "too far ahead") || strings.Contains(r.stderr, "may or may not") {
			t.Errorf("fire --delay 800h %v: %s", args, r.stderr)
		}
	}
}

// tail shows a copy replayed from the dead letters as a replay, not as a
// new event.
func TestTailMarksReplays(t *testing.T) {
	var out bytes.Buffer
	a := &app{stdout: &out}
	m := message.NewMessage("e-1", []byte(`{"id":1}`))
	m.Metadata.Set(transports.MetaReplayGroup, "shop-billing")
	if err := a.printTailed(transports.TailedEvent{Topic: "orders.placed", Message: m}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "(replayed from the dead letters of shop-billing)") {
		t.Fatalf("tail line %q does not say it is a replay", out.String())
	}
}
