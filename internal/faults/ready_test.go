package faults

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/internal/brokertest"
)

// TestReadyFollowsTheBroker cuts a started bus off its broker (a proxy in
// between) and back: Ready fails while the broker is away, Live does not
// (an outage is no reason to restart the process), and Ready recovers by
// itself once the broker is back.
func TestReadyFollowsTheBroker(t *testing.T) {
	for _, kind := range []string{"redis", "amqp"} {
		t.Run(kind, func(t *testing.T) {
			var target, raw string
			switch kind {
			case "redis":
				needRedis(t)
				target = redisAddr()
			case "amqp":
				needAMQP(t)
				u, err := url.Parse(amqpURL())
				if err != nil {
					t.Fatal(err)
				}
				target = u.Host
			}
			p, err := StartProxy(target)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Stop()
			if kind == "redis" {
				// Through the proxy; the keys are deleted on the server itself.
				prefix := "blfaults-" + randomName(8) + ":"
				t.Cleanup(func() { brokertest.DeleteRedisPrefix(t, redisAddr(), prefix) })
				raw = "redis://" + p.Addr() + "/0?prefix=" + url.QueryEscape(prefix)
			} else {
				raw, _ = amqpTestURL(t, "amqp://guest:guest@"+p.Addr()+"/", "", "faults-ready")
			}
			b := newBus(t, bus.Config{Service: "faults", Transport: raw, ShutdownTimeout: 2 * time.Second})
			defer b.Close() // before the proxy stops
			if err := bus.Listen(b, ticked, "ready", func(context.Context, bus.Delivery[tick]) error { return nil }); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := b.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if err := b.Ready(ctx); err != nil {
				t.Fatalf("Ready: %v", err)
			}
			p.Stop()
			rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
			err = b.Ready(rctx)
			rcancel()
			if !errors.Is(err, bus.ErrNotReady) || !strings.Contains(err.Error(), "unreachable") {
				t.Errorf("Ready with the broker away: %v, want ErrNotReady ... unreachable", err)
			}
			if err := b.Live(); err != nil {
				t.Errorf("Live with the broker away: %v", err)
			}
			if err := p.Start(); err != nil {
				t.Fatal(err)
			}
			for {
				rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
				err := b.Ready(rctx)
				rcancel()
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("Ready never recovered: %v", err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}
