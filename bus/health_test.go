package bus_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/bus/bustest"
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
