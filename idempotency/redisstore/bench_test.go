package redisstore_test

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/idempotency/redisstore"
	"github.com/busline/busline/internal/bench"
)

// BenchmarkEndToEnd runs internal/bench (what `busline bench` runs) on the
// test Redis with b.N events of 256 bytes from 32 goroutines: Busline on
// the Redis Streams transport with the Redis idempotency store (default
// chain and listener options, so dedup by event ID shared across
// processes) against watermill-redisstream with its defaults (no dedup),
// in the same run. It prints both rates and the ratio (bar: at least 2x);
// with -v it also runs Busline with the per-process memory store.
//
//	go test -run '^$' -bench EndToEnd -benchtime 20000x ./idempotency/redisstore/
//
// The same from the command line, with tuned Watermill and a raw go-redis
// loop beside them:
//
//	busline --transport redis://127.0.0.1:6379/0 bench --idempotency redis://127.0.0.1:6379/0
func BenchmarkEndToEnd(b *testing.B) {
	client(b) // skip or fail without Redis
	run := func(store string, sides ...string) *bench.Result {
		res, err := bench.Run(context.Background(), bench.Config{
			Transport: redisURL(), Idempotency: store, Events: b.N, Concurrency: 32, Sides: sides,
		})
		if err != nil {
			b.Fatal(err)
		}
		return res
	}
	b.ResetTimer()
	res := run(redisURL(), bench.SideBusline, bench.SideWatermill)
	b.StopTimer()
	b.ReportMetric(res.Busline.EndToEndPerSecond, "events/s")
	b.ReportMetric(0, "ns/op")
	if b.N < 100 {
		return // the framework's probing run
	}
	fmt.Printf("redis end to end, 256-byte events: busline + redis idempotency store %.0f events/s, watermill-redisstream defaults %.0f events/s, ratio %.2fx\n",
		res.Busline.EndToEndPerSecond, res.Watermill.EndToEndPerSecond, res.Ratio())
	if testing.Verbose() {
		mem := run("memory://", bench.SideBusline)
		fmt.Printf("busline + memory idempotency store %.0f events/s\n", mem.Busline.EndToEndPerSecond)
	}
}

// BenchmarkClaimCommit is the store's share of one event on a Redis
// transport: Begin, a deferred commit, and the ack's Pipelined call, from
// 16 goroutines (the bench's concurrency). Its allocs/op and the process
// CPU per op (time -v, or -cpuprofile) are the store's cost per event.
//
//	go test -run '^$' -bench ClaimCommit -benchmem ./idempotency/redisstore/
func BenchmarkClaimCommit(b *testing.B) {
	c := client(b)
	s := redisstore.New(c, redisstore.Options{Prefix: prefix(b, c), DeferCommits: true})
	ctx := context.Background()
	var n atomic.Int64
	b.SetParallelism(16 / max(runtime.GOMAXPROCS(0), 1))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := strconv.FormatInt(n.Add(1), 10)
			_, l, err := s.Begin(ctx, key, time.Minute)
			if err != nil {
				b.Error(err)
				return
			}
			s.CommitDeferred(l, time.Minute, func(error) {})
			if err := s.Pipelined(ctx, func(redis.Pipeliner) {}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
