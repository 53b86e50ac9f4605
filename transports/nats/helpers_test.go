package nats

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/busline/busline/internal/brokertest"
	"github.com/busline/busline/transports"
)

// needNATS skips (or fails, under BUSLINE_REQUIRE_BROKERS=1) when the
// test NATS server is down.
func needNATS(t testing.TB) {
	t.Helper()
	brokertest.NATS(t)
}

func randomName(n int) string { return strings.ToLower(rand.Text()[:n]) }

// testURL returns a nats:// URL on the test server (or on base) with a
// prefix of the test's own, plus query; every stream and bucket under the
// prefix is deleted when the test ends.
func testURL(t testing.TB, base, query string) string {
	t.Helper()
	if base == "" {
		needNATS(t)
		base = brokertest.NATSURL()
	}
	prefix := "bltest-" + randomName(8)
	t.Cleanup(func() { deletePrefix(t, base, prefix) })
	raw := base
	if strings.Contains(raw, "?") {
		raw += "&"
	} else {
		raw += "?"
	}
	raw += "prefix=" + url.QueryEscape(prefix)
	if query != "" {
		raw += "&" + query
	}
	return raw
}

// deletePrefix deletes the streams of prefix (events, dead letters, the
// record bucket).
func deletePrefix(t testing.TB, base, prefix string) {
	cfg, err := parseURLString(base)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	nc, err := natsgo.Connect(strings.Join(cfg.servers, ","), append(cfg.conn, natsgo.MaxReconnects(0))...)
	if err != nil {
		t.Logf("cleanup of %s: %v", prefix, err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Logf("cleanup of %s: %v", prefix, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	names := js.StreamNames(ctx)
	var del []string
	for n := range names.Name() {
		if strings.HasPrefix(n, prefix+"_") || n == "KV_"+prefix+"_records" {
			del = append(del, n)
		}
	}
	for _, n := range del {
		if err := js.DeleteStream(ctx, n); err != nil {
			t.Logf("cleanup: delete stream %s: %v", n, err)
		}
	}
}

// openTransport opens the transport of raw, closed when the test ends.
func openTransport(t testing.TB, raw string) *Transport {
	t.Helper()
	tr, err := transports.Open(context.Background(), raw, transports.OpenOptions{Service: "test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr.(*Transport)
}
