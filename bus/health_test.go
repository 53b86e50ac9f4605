package bus_test

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/bus/bustest"
	"github.com/busline/busline/internal/brokertest"
	"github.com/busline/busline/internal/faults"
	_ "github.com/busline/busline/transports/redisstream" // redis:// for the outage test
)

func probe(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func TestHealthThroughTheLifecycle(t *testing.T) {
	b := bustest.New(t, bus.Config{Service: "shop"})
	if err := bus.Listen(b.Bus, priceChanged, "alerts", func(context.Context, bus.Delivery[price]) error { return nil }); err != nil {
		t.Fatal(err)
	}
	h := b.HealthHandler()
	ctx := context.Background()
	if err := b.Live(); err != nil {
		t.Errorf("Live before Start: %v", err)
	}
	if err := b.Ready(ctx); !errors.Is(err, bus.ErrNotReady) {
		t.Errorf("Ready before Start: %v, want ErrNotReady", err)
	}
	if code, body := probe(t, h, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not started") {
		t.Errorf("/readyz before Start: %d %q", code, body)
	}
	b.Start(t)
	if err := b.Ready(ctx); err != nil {
		t.Errorf("Ready after Start: %v", err)
	}
	for _, path := range []string{"/healthz", "/livez", "/readyz", "/ops/readyz/"} {
		if code, body := probe(t, h, path); code != http.StatusOK || body != "ok\n" {
			t.Errorf("%s: %d %q", path, code, body)
		}
	}
	if code, _ := probe(t, h, "/other"); code != http.StatusNotFound {
		t.Errorf("/other: %d, want 404", code)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Live(); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Live after Close: %v, want ErrClosed", err)
	}
	if err := b.Ready(ctx); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Ready after Close: %v, want ErrClosed", err)
	}
	if code, _ := probe(t, h, "/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz after Close: %d, want 503", code)
	}
}

// TestReadyFollowsTheBroker cuts the bus off its Redis (a proxy in
// between) and back: Ready fails while the broker is away, Live does not,
// and Ready recovers once the broker is back.
func TestReadyFollowsTheBroker(t *testing.T) {
	brokertest.Reachable(t, brokertest.RedisAddr(), "redis-server --daemonize yes")
	p, err := faults.StartProxy(brokertest.RedisAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	prefix := "healthtest-" + strings.ToLower(rand.Text()[:8]) + ":"
	b, err := bus.New(bus.Config{
		Service: "shop", Transport: "redis://" + p.Addr() + "/0?prefix=" + prefix,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ShutdownTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = b.Close()
		deleteKeys(t, prefix)
	}()
	if err := bus.Listen(b, priceChanged, "alerts", func(context.Context, bus.Delivery[price]) error { return nil }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	p.Stop()
	rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
	err = b.Ready(rctx)
	rcancel()
	if !errors.Is(err, bus.ErrNotReady) || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("Ready with the broker away: %v, want ErrNotReady ... unreachable", err)
	}
	if err := b.Live(); err != nil {
		t.Errorf("Live with the broker away: %v (an outage is not a reason to restart)", err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	for {
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
		err := b.Ready(rctx)
		rcancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("Ready never recovered: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// deleteKeys removes the test's keys from the shared Redis.
func deleteKeys(t *testing.T, prefix string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: brokertest.RedisAddr()})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if keys, err := c.Keys(ctx, prefix+"*").Result(); err == nil && len(keys) > 0 {
		_ = c.Del(ctx, keys...).Err()
	}
}
