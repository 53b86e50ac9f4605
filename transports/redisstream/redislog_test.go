package redisstream

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/busline/busline/internal/syncbuf"
	"github.com/busline/busline/transports"
)

// go-redis's own lines (a failed dial) reach the logger the transport was
// opened with, as slog records, not stderr.
func TestGoRedisLogsGoThroughSlog(t *testing.T) {
	var buf syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A transport that opens keeps its logger registered while go-redis
	// fails to dial a second, unreachable client.
	addRedisLogTarget(log)
	defer removeRedisLogTarget(log)
	_, err := transports.Open(ctx, "redis://127.0.0.1:1/0?max_retries=0&dial_timeout=100ms", transports.OpenOptions{Logger: log})
	if err == nil {
		t.Fatal("opened a transport on port 1")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), "component=go-redis") {
		if time.Now().After(deadline) {
			t.Fatalf("no go-redis line in the slog output:\n%s", buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(buf.String(), "level=WARN") {
		t.Errorf("go-redis lines are not warnings:\n%s", buf.String())
	}
}
