package transporttest

import (
	"context"

	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/transports"
)

// Item is the payload of the suite's events.
type Item struct {
	N int `json:"n"`
}

// Other has a shape that does not decode into Item.
type Other struct {
	N string `json:"n"`
}

var (
	itemEvent  = bus.NewEvent[Item]("conformance", "item_added")
	otherEvent = bus.NewEvent[Other]("conformance", "item_added") // same name, wrong shape
)

// fastRetry redelivers after d without in-process retries.
func fastRetry(d time.Duration) bus.RetryPolicy {
	return bus.RetryPolicy{Tries: 1, RedeliveryDelay: func(int) time.Duration { return d }}
}

// newBus opens a bus on url as one process of service; it is closed at test end.
func newBus(t testing.TB, url, service, process string, mutate ...func(*bus.Config)) *bus.Bus {
	t.Helper()
	cfg := bus.Config{
		Service: service, Process: process, Transport: url,
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		ShutdownTimeout: 10 * time.Second,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	b, err := bus.New(cfg)
	if err != nil {
		t.Fatalf("bus.New(%s): %v", url, err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func start(t testing.TB, b *bus.Bus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
}

func listen[T any](t testing.TB, b *bus.Bus, e bus.Event[T], name string, h bus.Handler[T], opts ...bus.ListenOption) {
	t.Helper()
	if err := bus.Listen(b, e, name, h, opts...); err != nil {
		t.Fatalf("Listen(%q): %v", name, err)
	}
}

// fire fires n items numbered from first and returns their IDs.
func fire(t testing.TB, b *bus.Bus, first, n int) []string {
	t.Helper()
	ids := make([]string, 0, n)
	for i := first; i < first+n; i++ {
		id, err := bus.Fire(context.Background(), b, itemEvent, Item{N: i})
		if err != nil {
			t.Fatalf("Fire #%d: %v", i, err)
		}
		ids = append(ids, id)
	}
	return ids
}

// recorder counts handled deliveries by event ID.
type recorder struct {
	mu       sync.Mutex
	count    map[string]int
	order    []int
	attempts map[string][]int
	times    map[string][]time.Time
}

func newRecorder() *recorder {
	return &recorder{count: map[string]int{}, attempts: map[string][]int{}, times: map[string][]time.Time{}}
}

func (r *recorder) add(d bus.Delivery[Item]) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.count[d.ID]++
	r.order = append(r.order, d.Payload.N)
	r.attempts[d.ID] = append(r.attempts[d.ID], d.Attempt)
	r.times[d.ID] = append(r.times[d.ID], time.Now())
}

// handler records every delivery and returns nil.
func (r *recorder) handler(_ context.Context, d bus.Delivery[Item]) error {
	r.add(d)
	return nil
}

func (r *recorder) has(ids ...string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		if r.count[id] == 0 {
			return false
		}
	}
	return true
}

func (r *recorder) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.order)
}

func (r *recorder) get(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count[id]
}

func (r *recorder) seq() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.order)
}

// eventually polls cond until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func deadLetters(t testing.TB, b *bus.Bus, group string) []transports.DeadLetter {
	t.Helper()
	ds, ok := b.Transport().(transports.DeadLetterStore)
	if !ok {
		t.Fatalf("transport %T does not implement transports.DeadLetterStore", b.Transport())
	}
	list, err := ds.DeadLetters(context.Background(), group, 0)
	if err != nil {
		t.Fatalf("DeadLetters(%s): %v", group, err)
	}
	return list
}

func size(short, long int) int {
	if testing.Short() {
		return short
	}
	return long
}
