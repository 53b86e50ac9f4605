package bus_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/idempotency"
	"github.com/busline/busline/transports/memory"
)

func TestGroupName(t *testing.T) {
	if g := bus.GroupName("price-monitor", "send-price-alerts"); g != "price-monitor-send-price-alerts" {
		t.Fatal(g)
	}
}

func TestValidateName(t *testing.T) {
	for _, c := range []struct {
		kind, name string
		ok         bool
	}{
		{"listener", "x", true},
		{"listener", "dead", true},
		{"listener", "x.dead", false},
		{"listener", "x.dead.letters", true},
		{"listener", "x.retry.1s", false},
		{"service", "a.records.b", false},
		{"service", "billing-eu", true},
		{"service", strings.Repeat("s", bus.MaxServiceLen), true},
		{"service", strings.Repeat("s", bus.MaxServiceLen+1), false},
		{"process", strings.Repeat("p", bus.MaxProcessLen+1), false},
		{"listener", "", false},
		{"listener", "a/b", false},
	} {
		err := bus.ValidateName(c.kind, c.name)
		if (err == nil) != c.ok {
			t.Errorf("ValidateName(%s, %.30q) = %v, want ok=%v", c.kind, c.name, err, c.ok)
		}
		if err != nil && len(err.Error()) > 400 {
			t.Errorf("error too long: %d bytes", len(err.Error()))
		}
	}
	_, err := bus.New(bus.Config{Service: strings.Repeat("s", 10000)})
	if !errors.Is(err, bus.ErrInvalidConfig) || len(err.Error()) > 300 {
		t.Errorf("long service: %.300v", err)
	}
}

// The second (service, listener) pair that spells an owned group is refused.
func TestGroupConflictOnSharedMemoryBroker(t *testing.T) {
	name := "owners-" + t.Name()
	t.Cleanup(func() { memory.Forget(name) })
	ctx := context.Background()
	open := func(service, listener string) (*bus.Bus, error) {
		b, err := bus.New(bus.Config{Service: service, Transport: "memory://" + name})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		if err := bus.Listen(b, priceChanged, listener, func(context.Context, bus.Delivery[price]) error { return nil }); err != nil {
			t.Fatal(err)
		}
		return b, b.Start(ctx)
	}
	if _, err := open("billing-eu", "invoice"); err != nil {
		t.Fatal(err)
	}
	_, err := open("billing", "eu-invoice")
	if !errors.Is(err, bus.ErrGroupConflict) || !strings.Contains(err.Error(), `service "billing-eu" listener "invoice"`) || !strings.Contains(err.Error(), `service "billing" listener "eu-invoice"`) {
		t.Fatalf("Start: %v", err)
	}
	if _, err := open("billing-eu", "invoice"); err != nil {
		t.Fatalf("the owner's second process: %v", err)
	}
}

// A bus built from values: a transport and a store made in code.
func TestNewContextFromValues(t *testing.T) {
	tr := memory.New(memory.Named("values-"+t.Name(), 0))
	t.Cleanup(func() { memory.Forget("values-" + t.Name()) })
	store := idempotency.NewMemoryStore()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := bus.NewContext(ctx, bus.Config{Service: "values"}, bus.WithTransport(tr), bus.WithStore(store))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Transport() != tr {
		t.Fatal("the bus does not run on the given transport")
	}
	got := make(chan string, 1)
	if err := bus.Listen(b, priceChanged, "l", func(_ context.Context, d bus.Delivery[price]) error {
		got <- d.ID
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	id, err := bus.Fire(ctx, b, priceChanged, price{Product: "p", Price: 1})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case h := <-got:
		if h != id {
			t.Fatalf("handled %s, fired %s", h, id)
		}
	case <-ctx.Done():
		t.Fatal("not handled")
	}
	// New fails: the values given are closed, not leaked.
	tr2 := memory.New(memory.Named("values2-"+t.Name(), 0))
	t.Cleanup(func() { memory.Forget("values2-" + t.Name()) })
	if _, err := bus.NewContext(ctx, bus.Config{}, bus.WithTransport(tr2)); !errors.Is(err, bus.ErrInvalidConfig) {
		t.Fatalf("no service: %v", err)
	}
}

func TestLoadConfigTypo(t *testing.T) {
	file := filepath.Join(t.TempDir(), "busline.yaml")
	if err := os.WriteFile(file, []byte("service: shop\ntransprot: memory://\nlistener:\n  concurency: 3\n  ack_timeout: banana\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := bus.LoadConfig(file)
	if !errors.Is(err, bus.ErrInvalidConfig) {
		t.Fatalf("%v", err)
	}
	for _, want := range []string{file, `line 2: unknown key "transprot" (did you mean "transport"?)`, `unknown key "concurency" (did you mean "concurrency"?)`, `"banana" is not a duration`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if err := os.WriteFile(file, []byte("max_payload_bytes: redis://:Pl4nted@h/0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.LoadConfig(file); err == nil || strings.Contains(err.Error(), "Pl4nted") {
		t.Errorf("a URL in the wrong key: %v", err)
	}
	for _, bad := range []string{"fileConfig", "bus.", "struct {"} {
		if strings.Contains(strings.TrimPrefix(err.Error(), "bus: invalid configuration"), bad) {
			t.Errorf("error %q shows Go type %q", err, bad)
		}
	}
}
