package all_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/idempotency"
	"github.com/busline/busline/internal/brokertest"
	"github.com/busline/busline/internal/faults"
	"github.com/busline/busline/internal/syncbuf"
	"github.com/busline/busline/transports"
	_ "github.com/busline/busline/transports/all"
)

// TestEverySchemeRegistered: the one blank import enables every scheme
// the documentation shows, transports and idempotency stores.
func TestEverySchemeRegistered(t *testing.T) {
	for _, s := range []string{"memory", "redis", "rediss", "amqp", "amqps", "nats", "tls"} {
		if !slices.Contains(transports.Schemes(), s) {
			t.Errorf("transport scheme %s is not registered", s)
		}
	}
	for _, s := range []string{"memory", "redis", "rediss", "postgres", "postgresql"} {
		if !slices.Contains(idempotency.Schemes(), s) {
			t.Errorf("store scheme %s is not registered", s)
		}
	}
}

const planted = "Pl4nted5ecret"

// TestNewNeverPrintsSecrets opens buses whose transport or store URL
// carries a planted secret in every position, on every error path of New
// and of opening a store, and greps the errors and the logs for it.
func TestNewNeverPrintsSecrets(t *testing.T) {
	var transportURLs, storeURLs []string
	transportURLs = append(transportURLs,
		"redis://:"+planted+"@127.0.0.1:1/0",
		"amqp://guest:"+planted+"@127.0.0.1:1/",
		"amqp://"+planted+"@127.0.0.1:1/",
		"amqps://guest:"+planted+"@127.0.0.1:1/",
		"nats://u:"+planted+"@127.0.0.1:1/?token="+planted,
		"redis://u:"+planted+" x@127.0.0.1/0",
		"memory://x?password="+planted,
	)
	storeURLs = append(storeURLs,
		"redis://:"+planted+"@127.0.0.1:1/0",
		"postgres://u:"+planted+"@127.0.0.1:1/db?connect_timeout=1",
		"mysql://u:"+planted+"@127.0.0.1:1/db?token="+planted,
		"postgres://u:p@127.0.0.1:1/db?sslmode=bogus&password="+planted,
	)
	for _, k := range []string{"password", "sentinel_password", "sslpassword", "token", "secret", "key", "access_key", "api_key"} {
		transportURLs = append(transportURLs,
			"redis://127.0.0.1:6379/0?master_name=m&"+k+"="+planted,
			"redis://127.0.0.1:6379/0?"+k+"="+planted,
			"amqp://guest:guest@127.0.0.1:1/?"+k+"="+planted,
		)
		storeURLs = append(storeURLs,
			"postgres://u@127.0.0.1:1/db?connect_timeout=1&"+k+"="+planted,
			"redis://127.0.0.1:6379/0?master_name=m&"+k+"="+planted,
			"redis://127.0.0.1:6379/0?"+k+"="+planted,
		)
	}
	check := func(cfg bus.Config) {
		var logs syncbuf.Buffer
		cfg.Service = "secrets"
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		b, err := bus.NewContext(ctx, cfg)
		if err == nil {
			_ = b.Close()
			t.Errorf("%s / %s: New succeeded", transports.RedactURL(cfg.Transport), transports.RedactURL(cfg.Idempotency))
		}
		for what, out := range map[string]string{"error": errString(err), "logs": logs.String()} {
			if strings.Contains(out, planted) {
				t.Errorf("the secret is in the %s: %s", what, out)
			}
		}
	}
	for _, u := range transportURLs {
		check(bus.Config{Transport: u})
	}
	for _, u := range storeURLs {
		check(bus.Config{Idempotency: u})
		if _, err := idempotency.Open(context.Background(), u, nil); err == nil || strings.Contains(err.Error(), planted) {
			t.Errorf("idempotency.Open: %v", err)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// A broker that is down is ErrUnavailable; a bad URL is ErrInvalidConfig.
func TestNewUnavailableIsNotInvalidConfig(t *testing.T) {
	for _, c := range []struct {
		cfg  bus.Config
		want error
	}{
		{bus.Config{Transport: "redis://127.0.0.1:1/0?max_retries=-1"}, bus.ErrUnavailable},
		{bus.Config{Transport: "amqp://guest:guest@127.0.0.1:1/"}, bus.ErrUnavailable},
		{bus.Config{Idempotency: "postgres://u@127.0.0.1:1/db?connect_timeout=1"}, bus.ErrUnavailable},
		{bus.Config{Idempotency: "redis://127.0.0.1:1/0?max_retries=-1"}, bus.ErrUnavailable},
		{bus.Config{Transport: "redis://127.0.0.1:1/0?nope=1"}, bus.ErrInvalidConfig},
		{bus.Config{Transport: "amqp://127.0.0.1:1/?nope=1"}, bus.ErrInvalidConfig},
		{bus.Config{Transport: "nats://127.0.0.1:1"}, bus.ErrUnavailable},
		{bus.Config{Transport: "nats://127.0.0.1:1?nope=1"}, bus.ErrInvalidConfig},
		{bus.Config{Transport: "kafka://127.0.0.1:1"}, bus.ErrInvalidConfig},
		{bus.Config{Idempotency: "redis://127.0.0.1:1/0?nope=1"}, bus.ErrInvalidConfig},
	} {
		c.cfg.Service = "svc"
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := bus.NewContext(ctx, c.cfg)
		cancel()
		if !errors.Is(err, c.want) {
			t.Errorf("%s %s: %v, want %v", c.cfg.Transport, c.cfg.Idempotency, err, c.want)
		}
		other := bus.ErrInvalidConfig
		if c.want == bus.ErrInvalidConfig {
			other = bus.ErrUnavailable
		}
		if errors.Is(err, other) {
			t.Errorf("%s %s: %v is also %v", c.cfg.Transport, c.cfg.Idempotency, err, other)
		}
	}
}

// On a shared transport, Start warns once about a random process name and
// about dedup that holds only within the process.
func TestStartWarnsOfTraps(t *testing.T) {
	brokertest.Reachable(t, brokertest.RedisAddr(), "start Redis on "+brokertest.RedisAddr())
	prefix := "safetytest-" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	var logs syncbuf.Buffer
	b, err := bus.New(bus.Config{
		Service: "svc", Transport: brokertest.RedisURL() + "?prefix=" + prefix, Idempotency: "memory://",
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.Close()
		c := redis.NewClient(&redis.Options{Addr: brokertest.RedisAddr()})
		defer c.Close()
		keys, _ := c.Keys(context.Background(), prefix+"*").Result()
		if len(keys) > 0 {
			c.Del(context.Background(), keys...)
		}
	})
	ev := bus.NewEvent[int]("safety", "warned")
	if err := bus.Listen(b, ev, "l", func(context.Context, bus.Delivery[int]) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, want := range []string{"the process name changes at every start", "duplicates are dropped only within this process"} {
		if strings.Count(out, want) != 1 {
			t.Errorf("logs have %q %d times, want once:\n%s", want, strings.Count(out, want), out)
		}
	}
}

// Start against a broker that went down after New is ErrUnavailable too.
func TestStartUnavailable(t *testing.T) {
	brokertest.Reachable(t, brokertest.RedisAddr(), "start Redis on "+brokertest.RedisAddr())
	p, err := faults.StartProxy(brokertest.RedisAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	prefix := "safetytest-down-" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	b, err := bus.New(bus.Config{
		Service: "svc", Process: "p1", Transport: "redis://" + p.Addr() + "/0?max_retries=-1&dial_timeout=200ms&prefix=" + prefix,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := bus.Listen(b, bus.NewEvent[int]("safety", "down"), "l", func(context.Context, bus.Delivery[int]) error { return nil }); err != nil {
		t.Fatal(err)
	}
	p.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = b.Start(ctx)
	if !errors.Is(err, bus.ErrUnavailable) || errors.Is(err, bus.ErrInvalidConfig) {
		t.Fatalf("Start with the broker down: %v, want ErrUnavailable", err)
	}
}
