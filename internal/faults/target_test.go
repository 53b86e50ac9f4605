package faults

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/transports/memory"
)

// target is one broker under test with the broker-side views the
// assertions need. Each target has a service and a group of its own.
type target struct {
	kind    string // "redis", "amqp", "nats" or "memory"
	url     string
	service string
	group   string // service + "-work"

	// ready reports whether the group exists with a consumer, so that an
	// event fired now reaches it.
	ready func() bool
	// pending returns the IDs of the events pending for consumer, or false
	// when the broker cannot tell (AMQP).
	pending func(consumer string) (map[string]bool, bool)
	// pendingCount returns the number of entries pending for consumer
	// (-1: the broker cannot tell) and how many of them are idle for at
	// least minIdle.
	pendingCount func(consumer string, minIdle time.Duration) (n, idle int)

	rdb      redis.UniversalClient // Redis only
	stream   string                // Redis: the stream of ticked
	prefix   string                // Redis: the key prefix of the test
	exchange string                // AMQP: the exchange events are published to
	js       jetstream.JetStream   // NATS only
}

const listenerName = "work"

// redisTarget is a target on the Redis at addr (the shared test Redis when empty).
func redisTarget(t testing.TB, addr, query string) *target {
	t.Helper()
	var raw, prefix string
	if addr == "" {
		raw, prefix = sharedRedisURL(t, query)
		addr = redisAddr()
	} else {
		raw, prefix = redisURL(t, addr, query)
	}
	service := "svc-" + randomName(6)
	tg := &target{kind: "redis", url: raw, service: service, group: service + "-" + listenerName}
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: 1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	tg.rdb = rdb
	stream := prefix + ticked.Name()
	tg.stream, tg.prefix = stream, prefix
	ctx := context.Background()
	tg.ready = func() bool {
		groups, err := rdb.XInfoGroups(ctx, stream).Result()
		if err != nil {
			return false
		}
		for _, g := range groups {
			if g.Name == tg.group {
				return true
			}
		}
		return false
	}
	tg.pending = func(consumer string) (map[string]bool, bool) {
		ps, err := rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
			Stream: stream, Group: tg.group, Start: "-", End: "+", Count: 1 << 20, Consumer: consumer,
		}).Result()
		if err != nil {
			t.Fatalf("XPENDING %s %s %s: %v", stream, tg.group, consumer, err)
		}
		pipe := rdb.Pipeline()
		cmds := make([]*redis.XMessageSliceCmd, len(ps))
		for i, p := range ps {
			cmds[i] = pipe.XRangeN(ctx, stream, p.ID, p.ID, 1)
		}
		if len(ps) > 0 {
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatalf("XRANGE of pending entries: %v", err)
			}
		}
		ids := map[string]bool{}
		for _, c := range cmds {
			for _, xm := range c.Val() {
				if id, ok := xm.Values["_watermill_message_uuid"].(string); ok {
					ids[id] = true
				}
			}
		}
		return ids, true
	}
	tg.pendingCount = func(consumer string, minIdle time.Duration) (int, int) {
		ps, err := rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
			Stream: stream, Group: tg.group, Start: "-", End: "+", Count: 1 << 20, Consumer: consumer,
		}).Result()
		if err != nil {
			t.Fatalf("XPENDING: %v", err)
		}
		idle := 0
		for _, p := range ps {
			if p.Idle >= minIdle {
				idle++
			}
		}
		return len(ps), idle
	}
	return tg
}

// amqpTarget is a target on RabbitMQ reached through base (the test
// broker when empty; a proxy's URL to cut connections).
func amqpTarget(t testing.TB, base, query string) *target {
	t.Helper()
	service := "svc-" + randomName(6)
	group := service + "-" + listenerName
	raw, qprefix := amqpTestURL(t, base, query, group)
	tg := &target{kind: "amqp", url: raw, service: service, group: group, exchange: strings.TrimSuffix(qprefix, ".")}
	conn, err := amqp091.Dial(amqpURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	queue := func() (amqp091.Queue, bool) {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatalf("amqp channel: %v", err)
		}
		defer ch.Close()
		q, err := ch.QueueDeclarePassive(qprefix+group, true, false, false, false, nil)
		return q, err == nil
	}
	tg.ready = func() bool {
		q, ok := queue()
		return ok && q.Consumers > 0
	}
	tg.pending = func(string) (map[string]bool, bool) { return nil, false }
	tg.pendingCount = func(string, time.Duration) (int, int) { return -1, -1 }
	return tg
}

// memoryTarget is a target on a named memory broker of the test's own,
// shared by the buses of the test's process.
func memoryTarget(t testing.TB) *target {
	name := "faults-" + randomName(8)
	t.Cleanup(func() { memory.Forget(name) })
	service := "svc-" + randomName(6)
	tg := &target{kind: "memory", url: "memory://" + name, service: service, group: service + "-" + listenerName}
	tg.ready = func() bool { return true }
	tg.pending = func(string) (map[string]bool, bool) { return nil, false }
	tg.pendingCount = func(string, time.Duration) (int, int) { return -1, -1 }
	return tg
}

// newTarget returns a target of the given kind on the test brokers.
func newTarget(t testing.TB, kind string) *target {
	t.Helper()
	switch kind {
	case "redis":
		return redisTarget(t, "", "")
	case "amqp":
		return amqpTarget(t, "", "")
	case "nats":
		return natsTarget(t, "")
	default:
		return memoryTarget(t)
	}
}

// child returns the spec of a listener process of the target.
func (tg *target) child(process, out string) childSpec {
	return childSpec{
		Transport: tg.url, Service: tg.service, Process: process, Listener: listenerName, Out: out,
	}
}
