package nats

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/internal/syncbuf"
	"github.com/busline/busline/transports"
)

// A URL's limits apply to streams that exist already (the dead-letter
// stream's dead_maxlen too); a storage JetStream cannot change is said in
// the log, not silently ignored.
func TestURLLimitsApplyToExistingStreams(t *testing.T) {
	raw := testURL(t, "", "")
	ctx := context.Background()
	first := openTransport(t, raw)
	if err := first.Publish("limits.applied", message.NewMessage("e1", []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	if err := first.DeadLetter(ctx, "svc-l", message.NewMessage("e2", []byte(`{}`)), "test", 1); err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	tr, err := transports.Open(ctx, raw+"&maxlen=5&dead_maxlen=2&storage=memory", transports.OpenOptions{Service: "test", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	second := tr.(*Transport)
	if err := second.Publish("limits.applied", message.NewMessage("e3", []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	if err := second.DeadLetter(ctx, "svc-l", message.NewMessage("e4", []byte(`{}`)), "test", 1); err != nil {
		t.Fatal(err)
	}
	s, err := second.js.Stream(ctx, second.opts.StreamName("limits.applied"))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.MaxMsgs; got != 5 {
		t.Errorf("event stream MaxMsgs = %d, want the URL's maxlen 5", got)
	}
	d, err := second.js.Stream(ctx, second.opts.DeadStream())
	if err != nil {
		t.Fatal(err)
	}
	if got := d.CachedInfo().Config.MaxMsgsPerSubject; got != 2 {
		t.Errorf("dead-letter stream MaxMsgsPerSubject = %d, want the URL's dead_maxlen 2", got)
	}
	if !strings.Contains(logs.String(), "another storage than the URL asks for") {
		t.Errorf("no warning of the storage the stream keeps; logs:\n%s", logs.String())
	}
}

// A tool (transports.OpenOptions.KeepLimits) leaves an existing stream's
// limits as the services set them.
func TestKeepLimitsLeavesStreams(t *testing.T) {
	raw := testURL(t, "", "")
	ctx := context.Background()
	first := openTransport(t, raw+"&maxlen=0")
	if err := first.Publish("limits.kept", message.NewMessage("e1", []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	tr, err := transports.Open(ctx, raw, transports.OpenOptions{KeepLimits: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	tool := tr.(*Transport)
	if err := tool.Publish("limits.kept", message.NewMessage("e2", []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	s, err := tool.js.Stream(ctx, tool.opts.StreamName("limits.kept"))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.MaxMsgs; got != -1 {
		t.Errorf("MaxMsgs = %d after a tool fired, want the service's -1 (no cap)", got)
	}
}
