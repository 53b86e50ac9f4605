package redisstream

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/busline/busline/transports"
)

// Keys under a longer prefix (another deployment's "{prefix}eu:") are not
// events of this one.
func TestInspectSkipsKeysOfALongerPrefix(t *testing.T) {
	raw := testURL(t, "")
	outer := openTransport(t, raw)
	inner := openTransport(t, strings.Replace(raw, "prefix="+url.QueryEscape(outer.Options().Prefix), "prefix="+url.QueryEscape(outer.Options().Prefix+"eu:"), 1))
	if inner.Options().Prefix != outer.Options().Prefix+"eu:" {
		t.Fatalf("inner prefix %q", inner.Options().Prefix)
	}
	publish(t, inner, "orders.placed", `{}`)
	publish(t, outer, "orders.paid", `{}`)
	in, err := outer.Inspect(context.Background(), transports.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, s := range in.Streams {
		events = append(events, s.Event)
	}
	if len(events) != 1 || events[0] != "orders.paid" {
		t.Fatalf("events %v, want only orders.paid", events)
	}
}

// A tool (transports.OpenOptions.KeepLimits) appends without trimming: a
// URL without the deployment's maxlen must not cut unread events.
func TestKeepLimitsDoesNotTrim(t *testing.T) {
	raw := testURL(t, "maxlen=2")
	tr, err := transports.Open(context.Background(), raw, transports.OpenOptions{KeepLimits: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	// Trimming is approximate (whole nodes of 100 entries): enough
	// entries that MAXLEN ~ 2 would cut some.
	const n = 400
	payloads := make([]string, n)
	for i := range payloads {
		payloads[i] = `{}`
	}
	publish(t, tr.(*Transport), "orders.kept", payloads...)
	got, err := tr.(*Transport).client.XLen(context.Background(), tr.(*Transport).StreamKey("orders.kept")).Result()
	if err != nil || got != n {
		t.Fatalf("XLEN = %d, %v; want all %d entries kept", got, err, n)
	}
}

func TestParseLiveKey(t *testing.T) {
	for _, c := range []struct {
		in                     string
		group, event, consumer string
		ok                     bool
	}{
		{"shop-email/orders.placed/web-1/ABC123", "shop-email", "orders.placed", "web-1", true},
		{"shop-email/orders.placed/host/a/b/ABC123", "shop-email", "orders.placed", "host/a/b", true},
		{"eu:shop-email/orders.placed/web-1/T", "", "", "", false}, // another deployment's, under "{prefix}live:eu:"
		{"shop-email/orders.placed/T", "", "", "", false},
		{"shop-email", "", "", "", false},
		{"shop-email/orders.placed//T", "", "", "", false},
	} {
		g, e, cons, ok := parseLiveKey(c.in)
		if ok != c.ok || g != c.group || e != c.event || cons != c.consumer {
			t.Errorf("parseLiveKey(%q) = %q, %q, %q, %v; want %q, %q, %q, %v", c.in, g, e, cons, ok, c.group, c.event, c.consumer, c.ok)
		}
	}
}
