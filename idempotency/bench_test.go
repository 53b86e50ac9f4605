package idempotency_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/idempotency"
	"github.com/busline/busline/idempotency/pgstore"
	_ "github.com/busline/busline/idempotency/redisstore"
	"github.com/busline/busline/internal/brokertest"
	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/memory"
)

// The benchmarks measure what each store adds per event:
//
//	go test -run '^$' -bench . -benchtime 3000x ./idempotency/
//
// BenchmarkMiddleware: one event at a time through idempotency.Middleware
// around a handler that does nothing (the store's round trips per event).
// BenchmarkBusMemory: end to end on the memory transport, 32 goroutines
// firing, default listener options; the store is the only difference.

func benchRedisURL(b *testing.B) string {
	addr := brokertest.RedisAddr()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err != nil {
		b.Skipf("Redis unreachable at %s: %v", addr, err)
	}
	prefix := "busline-bench:" + strings.ToLower(rand.Text()[:8]) + ":"
	b.Cleanup(func() { brokertest.DeleteRedisPrefix(b, addr, prefix) })
	return "redis://" + addr + "/0?prefix=" + prefix
}

func benchPGURL() string {
	if u := os.Getenv("BUSLINE_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// benchPG returns a pool and a fresh dedup table (dropped afterwards).
func benchPG(b *testing.B) (*pgxpool.Pool, string) {
	p, err := pgxpool.New(context.Background(), benchPGURL())
	if err == nil {
		err = p.Ping(context.Background())
	}
	if err != nil {
		b.Skipf("PostgreSQL unreachable: %v", err)
	}
	b.Cleanup(p.Close)
	name := "busline_bench_" + strings.ToLower(rand.Text()[:8])
	b.Cleanup(func() {
		_, _ = p.Exec(context.Background(), "DROP TABLE IF EXISTS "+pgx.Identifier{name}.Sanitize())
	})
	if err := pgstore.Migrate(context.Background(), p, name); err != nil {
		b.Fatal(err)
	}
	return p, name
}

type benchStore struct {
	name string
	url  func(b *testing.B) string // "" = idempotency off
}

var benchStores = []benchStore{
	{"none", func(*testing.B) string { return "" }},
	{"memory", func(*testing.B) string { return "memory://" }},
	{"redis", benchRedisURL},
	{"postgres", func(b *testing.B) string {
		_, table := benchPG(b)
		u := benchPGURL()
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		return u + sep + "table=" + table
	}},
}

var benchResults sync.Map // "bench/store" -> ns per event

func report(prefix string, unit string) {
	base, ok := benchResults.Load(prefix + "/none")
	if !ok {
		return
	}
	for _, s := range benchStores[1:] {
		v, ok := benchResults.Load(prefix + "/" + s.name)
		if !ok {
			continue
		}
		fmt.Printf("%s %-8s %8.1f µs/event, overhead %+7.1f µs/event %s\n", prefix, s.name,
			v.(float64)/1e3, (v.(float64)-base.(float64))/1e3, unit)
	}
}

func BenchmarkMiddleware(b *testing.B) {
	for _, s := range benchStores {
		b.Run(s.name, func(b *testing.B) {
			h := func(*message.Message) ([]*message.Message, error) { return nil, nil }
			chain := message.HandlerFunc(h)
			if u := s.url(b); u != "" {
				st, err := idempotency.Open(context.Background(), u, nil)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = st.Close() })
				chain = idempotency.Middleware(idempotency.Options{Store: st, Group: "bench", Lease: time.Minute})(h)
			}
			ids := make([]string, b.N)
			for i := range ids {
				ids[i] = fmt.Sprintf("%s-%d", rand.Text()[:8], i)
			}
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				msg := message.NewMessage(ids[i], nil)
				msg.SetContext(transports.WithDeliveryInfo(context.Background(), &transports.DeliveryInfo{Attempt: 1}))
				if _, err := chain(msg); err != nil {
					b.Fatal(err)
				}
			}
			benchResults.Store("middleware/"+s.name, float64(time.Since(start).Nanoseconds())/float64(b.N))
		})
	}
	report("middleware", "(one event at a time)")
}

type benchPayload struct {
	Data string `json:"data"`
}

var benchEvent = bus.NewEvent[benchPayload]("bench", "stored")

func BenchmarkBusMemory(b *testing.B) {
	for _, s := range benchStores {
		b.Run(s.name, func(b *testing.B) {
			store := s.url(b)
			var opts []bus.ListenOption
			if store == "" {
				store = "memory://"
				opts = append(opts, bus.WithoutIdempotency())
			}
			name := "bench-" + rand.Text()[:8]
			b.Cleanup(func() { memory.Forget(name) })
			bb, err := bus.New(bus.Config{Service: "bench", Transport: "memory://" + name, Idempotency: store})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = bb.Close() })
			var handled atomic.Int64
			done := make(chan struct{})
			n := int64(b.N)
			err = bus.Listen(bb, benchEvent, "sink", func(context.Context, bus.Delivery[benchPayload]) error {
				if handled.Add(1) == n {
					close(done)
				}
				return nil
			}, opts...)
			if err != nil {
				b.Fatal(err)
			}
			if err := bb.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			payload := benchPayload{Data: strings.Repeat("x", 245)}
			b.ResetTimer()
			start := time.Now()
			var next atomic.Int64
			var wg sync.WaitGroup
			for range 32 {
				wg.Go(func() {
					for next.Add(1) <= n {
						if _, err := bus.Fire(context.Background(), bb, benchEvent, payload); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			select {
			case <-done:
			case <-time.After(5 * time.Minute):
				b.Fatalf("handled %d of %d", handled.Load(), n)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			benchResults.Store("bus-memory/"+s.name, float64(elapsed.Nanoseconds())/float64(b.N))
		})
	}
	report("bus-memory", "(throughput, 16 handlers in flight)")
}

// BenchmarkPostgresEffect compares a handler that writes one row with
// autocommit and no dedup (at-least-once effects) to the same handler
// writing through pgstore.Tx under the Postgres store (exactly-once
// effects): the price of the guarantee for a database handler.
func BenchmarkPostgresEffect(b *testing.B) {
	for _, exactlyOnce := range []bool{false, true} {
		name := "autocommit-no-dedup"
		if exactlyOnce {
			name = "exactly-once"
		}
		b.Run(name, func(b *testing.B) {
			p, table := benchPG(b)
			fx := "busline_benchfx_" + strings.ToLower(rand.Text()[:8])
			if _, err := p.Exec(context.Background(), "CREATE TABLE "+fx+" (event_id text PRIMARY KEY)"); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _, _ = p.Exec(context.Background(), "DROP TABLE IF EXISTS "+fx) })
			insert := "INSERT INTO " + fx + " (event_id) VALUES ($1)"
			chain := message.HandlerFunc(func(msg *message.Message) ([]*message.Message, error) {
				_, err := p.Exec(msg.Context(), insert, msg.UUID)
				return nil, err
			})
			if exactlyOnce {
				st, err := pgstore.New(context.Background(), p, pgstore.Options{Table: table})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = st.Close() })
				chain = idempotency.Middleware(idempotency.Options{Store: st, Group: "bench"})(
					func(msg *message.Message) ([]*message.Message, error) {
						_, err := pgstore.Tx(msg.Context()).Exec(msg.Context(), insert, msg.UUID)
						return nil, err
					})
			}
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				msg := message.NewMessage(fmt.Sprintf("ev-%d", i), nil)
				msg.SetContext(transports.WithDeliveryInfo(context.Background(), &transports.DeliveryInfo{Attempt: 1}))
				if _, err := chain(msg); err != nil {
					b.Fatal(err)
				}
			}
			benchResults.Store("pg-effect/"+name, float64(time.Since(start).Nanoseconds())/float64(b.N))
		})
	}
	a, ok1 := benchResults.Load("pg-effect/autocommit-no-dedup")
	e, ok2 := benchResults.Load("pg-effect/exactly-once")
	if ok1 && ok2 {
		fmt.Printf("postgres handler writing one row: autocommit without dedup %.1f µs/event, exactly-once %.1f µs/event (%+.1f µs)\n",
			a.(float64)/1e3, e.(float64)/1e3, (e.(float64)-a.(float64))/1e3)
	}
}
