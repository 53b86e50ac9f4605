package bus_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/memory"
)

// FireBatch hands a batch of events to the transport in one call; the
// listener gets each as if fired on its own.
func ExampleFireBatch() {
	b, err := bus.New(bus.Config{Service: "catalog"})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	imported := bus.NewEvent[string]("catalog", "item_imported")
	var mu sync.Mutex
	var got []string
	done := make(chan struct{})
	if err := bus.Listen(b, imported, "indexer", func(_ context.Context, d bus.Delivery[string]) error {
		mu.Lock()
		defer mu.Unlock()
		if got = append(got, d.Payload); len(got) == 3 {
			close(done)
		}
		return nil
	}); err != nil {
		panic(err)
	}
	ctx := context.Background()
	if err := b.Start(ctx); err != nil {
		panic(err)
	}
	ids, err := bus.FireBatch(ctx, b, imported, []string{"lamp", "desk", "chair"})
	if err != nil {
		panic(err)
	}
	<-done
	mu.Lock()
	sort.Strings(got)
	fmt.Println(len(ids), got)
	mu.Unlock()
	// Output: 3 [chair desk lamp]
}

// countingTransport is the memory transport with Publish recorded: the
// size of each call, and, when failAfter >= 0, a failure after storing
// the first failAfter messages of a call.
type countingTransport struct {
	transports.Transport
	mu        sync.Mutex
	calls     []int
	failAfter int
	failCall  int // when > 0, the call of this number (1-based) fails before storing anything
}

var errPartial = errors.New("the broker went away mid-batch")

func (c *countingTransport) Publish(topic string, msgs ...*message.Message) error {
	c.mu.Lock()
	c.calls = append(c.calls, len(msgs))
	fail := c.failAfter
	c.failAfter = -1
	if c.failCall > 0 && len(c.calls) == c.failCall {
		c.failCall = 0
		fail = 0
	}
	c.mu.Unlock()
	if fail >= 0 && fail < len(msgs) {
		if err := c.Transport.Publish(topic, msgs[:fail]...); err != nil {
			return err
		}
		return errPartial
	}
	return c.Transport.Publish(topic, msgs...)
}

func (c *countingTransport) takeCalls() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	calls := c.calls
	c.calls = nil
	return calls
}

var (
	countingMu  sync.Mutex
	countingFor = map[string]*countingTransport{}
)

func init() {
	transports.Register("counting-test", func(_ context.Context, u *url.URL, _ transports.OpenOptions) (transports.Transport, error) {
		c := &countingTransport{Transport: memory.New(memory.NewBroker(0)), failAfter: -1}
		countingMu.Lock()
		countingFor[u.Host] = c
		countingMu.Unlock()
		return c, nil
	})
}

// newCountingBus returns a bus on a countingTransport of its own, and the
// transport.
func newCountingBus(t *testing.T, cfg bus.Config) (*bus.Bus, *countingTransport) {
	t.Helper()
	cfg.Transport = "counting-test://" + strings.ReplaceAll(t.Name(), "/", "-")
	b, err := bus.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	countingMu.Lock()
	defer countingMu.Unlock()
	return b, countingFor[strings.ReplaceAll(t.Name(), "/", "-")]
}

// TestFireBatch: one transport call for the batch, each event built as
// Fire builds it (its own ID, in payload order; options on every event),
// and every event delivered.
func TestFireBatch(t *testing.T) {
	b, tr := newCountingBus(t, bus.Config{Service: "orders"})
	ev := bus.NewEvent[int]("orders", "counted")
	var mu sync.Mutex
	seen := map[string]int{}
	all := make(chan struct{})
	if err := bus.Listen(b, ev, "tally", func(_ context.Context, d bus.Delivery[int]) error {
		mu.Lock()
		defer mu.Unlock()
		if d.Metadata["k"] != "v" {
			t.Errorf("event %s: metadata %v, want k=v", d.ID, d.Metadata)
		}
		if seen[d.ID] = d.Payload; len(seen) == 3 {
			close(all)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ids, err := bus.FireBatch(ctx, b, ev, []int{10, 20, 30}, bus.WithMetadata(map[string]string{"k": "v"}))
	if err != nil {
		t.Fatal(err)
	}
	if calls := tr.takeCalls(); !slices.Equal(calls, []int{3}) {
		t.Fatalf("Publish calls %v, want one of 3 messages", calls)
	}
	if len(ids) != 3 || ids[0] == ids[1] || ids[1] == ids[2] || ids[0] == ids[2] {
		t.Fatalf("IDs %v, want 3 distinct", ids)
	}
	if !sort.StringsAreSorted(ids) {
		t.Errorf("IDs %v are not in firing order (UUIDv7s of one process increase)", ids)
	}
	select {
	case <-all:
	case <-time.After(10 * time.Second):
		t.Fatal("the listener did not get the 3 events")
	}
	mu.Lock()
	defer mu.Unlock()
	for i, want := range []int{10, 20, 30} {
		if seen[ids[i]] != want {
			t.Errorf("event %s: payload %d, want %d", ids[i], seen[ids[i]], want)
		}
	}
}

// TestFireBatchRefused: bad input fails the call before anything is
// published, with the sentinel errors of Fire.
func TestFireBatchRefused(t *testing.T) {
	b, tr := newCountingBus(t, bus.Config{Service: "orders", MaxPayloadBytes: 8})
	ev := bus.NewEvent[string]("orders", "noted")
	ctx := context.Background()
	ids, err := bus.FireBatch(ctx, b, ev, nil)
	if err != nil || ids != nil {
		t.Fatalf("empty batch = %v, %v; want nothing", ids, err)
	}
	_, err = bus.FireBatch(ctx, b, ev, []string{"ok", "far too long", "ok"})
	if !errors.Is(err, bus.ErrPayloadTooLarge) || !strings.Contains(err.Error(), "payload 1") {
		t.Fatalf("oversized payload: %v, want ErrPayloadTooLarge naming payload 1", err)
	}
	if _, err := bus.FireBatch(ctx, b, ev, []string{"a", "b"}, bus.WithEventID("x")); !errors.Is(err, bus.ErrInvalidEvent) {
		t.Fatalf("WithEventID on a batch: %v, want ErrInvalidEvent", err)
	}
	if _, err := bus.FireBatch(ctx, b, ev, []string{"a", "b"}, bus.WithEventIDs("x")); !errors.Is(err, bus.ErrInvalidEvent) {
		t.Fatalf("1 ID for 2 payloads: %v, want ErrInvalidEvent", err)
	}
	if _, err := bus.FireBatch(ctx, b, ev, []string{"a", "b", "c"}, bus.WithEventIDs("x", "", "x")); !errors.Is(err, bus.ErrInvalidEvent) {
		t.Fatalf("a repeated ID: %v, want ErrInvalidEvent", err)
	}
	if _, err := bus.Fire(ctx, b, ev, "a", bus.WithEventIDs("x", "y")); !errors.Is(err, bus.ErrInvalidEvent) {
		t.Fatalf("Fire with 2 IDs: %v, want ErrInvalidEvent", err)
	}
	if _, err := bus.FireBatch(ctx, b, bus.Event[string]{}, []string{"a"}); !errors.Is(err, bus.ErrInvalidEvent) {
		t.Fatalf("zero Event: %v, want ErrInvalidEvent", err)
	}
	if calls := tr.takeCalls(); len(calls) != 0 {
		t.Fatalf("Publish calls %v after refused batches, want none", calls)
	}
	if id, err := bus.Fire(ctx, b, ev, "a", bus.WithEventIDs("given")); err != nil || id != "given" {
		t.Fatalf("Fire WithEventIDs(given) = %q, %v", id, err)
	}
	// Of WithEventID and WithEventIDs, the last one applies.
	if id, err := bus.Fire(ctx, b, ev, "a", bus.WithEventIDs("x", "y"), bus.WithEventID("last")); err != nil || id != "last" {
		t.Fatalf("Fire WithEventIDs then WithEventID = %q, %v; want last", id, err)
	}
	if ids, err := bus.FireBatch(ctx, b, ev, []string{"a"}, bus.WithEventID("x"), bus.WithEventIDs("last")); err != nil || ids[0] != "last" {
		t.Fatalf("FireBatch WithEventID then WithEventIDs = %v, %v; want [last]", ids, err)
	}
	// No IDs at all: new ones, as without the option.
	if ids, err := bus.FireBatch(ctx, b, ev, []string{"a", "b"}, bus.WithEventIDs([]string{}...)); err != nil || len(ids) != 2 || ids[0] == "" {
		t.Fatalf("FireBatch WithEventIDs() = %v, %v; want two new IDs", ids, err)
	}
	_ = b.Close()
	if _, err := bus.FireBatch(ctx, b, ev, []string{"a"}); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("FireBatch on a closed bus: %v, want ErrClosed", err)
	}
}

// TestFireBatchRetry: a transport that fails mid-batch after storing part
// of it; FireBatch returns the IDs with the error, and firing the batch
// again with them delivers each event once to an idempotent listener.
func TestFireBatchRetry(t *testing.T) {
	b, tr := newCountingBus(t, bus.Config{Service: "orders"})
	ev := bus.NewEvent[int]("orders", "retried")
	var mu sync.Mutex
	handled := map[string]int{}
	if err := bus.Listen(b, ev, "tally", func(_ context.Context, d bus.Delivery[int]) error {
		mu.Lock()
		handled[d.ID]++
		mu.Unlock()
		return nil
	}, bus.WithConcurrency(1)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	tr.mu.Lock()
	tr.failAfter = 2
	tr.mu.Unlock()
	payloads := []int{1, 2, 3, 4}
	ids, err := bus.FireBatch(ctx, b, ev, payloads)
	if !errors.Is(err, errPartial) || len(ids) != 4 {
		t.Fatalf("FireBatch = %v, %v; want 4 IDs and the transport's error", ids, err)
	}
	again, err := bus.FireBatch(ctx, b, ev, payloads, bus.WithEventIDs(ids...))
	if err != nil || !slices.Equal(again, ids) {
		t.Fatalf("second FireBatch = %v, %v; want the same IDs", again, err)
	}
	// A marker fired after the batches: the listener handles one event at
	// a time in stream order, so once the marker is handled the counts of
	// the events before it are final.
	marker, err := bus.Fire(ctx, b, ev, 0)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := handled[marker]
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the marker was not handled")
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		if handled[id] != 1 {
			t.Errorf("event %s handled %d times, want once (handled: %v)", id, handled[id], handled)
		}
	}
}

// TestFireBatchCalls: a batch larger than MaxBatchCall goes to the
// transport in calls of that many; a failing call stops the batch and the
// error says how many were stored before it.
func TestFireBatchCalls(t *testing.T) {
	b, tr := newCountingBus(t, bus.Config{Service: "orders"})
	ev := bus.NewEvent[int]("orders", "bulk")
	ctx := context.Background()
	n := 2*bus.MaxBatchCall + 500
	ids, err := bus.FireBatch(ctx, b, ev, make([]int, n))
	if err != nil || len(ids) != n {
		t.Fatalf("FireBatch of %d = %d IDs, %v", n, len(ids), err)
	}
	if calls := tr.takeCalls(); !slices.Equal(calls, []int{bus.MaxBatchCall, bus.MaxBatchCall, 500}) {
		t.Fatalf("Publish calls %v, want %d, %d, 500", calls, bus.MaxBatchCall, bus.MaxBatchCall)
	}
	// The first call stores 10 and fails: the rest is not sent.
	tr.mu.Lock()
	tr.failAfter = 10
	tr.mu.Unlock()
	if _, err := bus.FireBatch(ctx, b, ev, make([]int, n)); !errors.Is(err, errPartial) {
		t.Fatalf("failing first call: %v", err)
	}
	if calls := tr.takeCalls(); !slices.Equal(calls, []int{bus.MaxBatchCall}) {
		t.Fatalf("Publish calls %v after a failed first call, want only it", calls)
	}
	// The second call fails: the error says the first call's events are stored.
	tr.mu.Lock()
	tr.failCall = 2
	tr.mu.Unlock()
	_, err = bus.FireBatch(ctx, b, ev, make([]int, n))
	want := fmt.Sprintf("the first %d of %d stored", bus.MaxBatchCall, n)
	if !errors.Is(err, errPartial) || !strings.Contains(err.Error(), want) {
		t.Fatalf("failing second call: %v, want %q", err, want)
	}
	if calls := tr.takeCalls(); !slices.Equal(calls, []int{bus.MaxBatchCall, bus.MaxBatchCall}) {
		t.Fatalf("Publish calls %v, want two", calls)
	}
	// An ended context fires nothing.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := bus.FireBatch(cctx, b, ev, []int{1}); !errors.Is(err, context.Canceled) {
		t.Fatalf("FireBatch with an ended context: %v", err)
	}
	if calls := tr.takeCalls(); len(calls) != 0 {
		t.Fatalf("Publish calls %v with an ended context, want none", calls)
	}
}

// TestFireBatchSpans: when a later call of a batch fails, the PRODUCER
// spans of the events stored by the earlier calls end clean and the others
// end with the error.
func TestFireBatchSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	b, tr := newCountingBus(t, bus.Config{Service: "orders", TracerProvider: tp})
	ev := bus.NewEvent[int]("orders", "traced")
	tr.mu.Lock()
	tr.failCall = 2
	tr.mu.Unlock()
	n := bus.MaxBatchCall + 10
	if _, err := bus.FireBatch(context.Background(), b, ev, make([]int, n)); !errors.Is(err, errPartial) {
		t.Fatalf("FireBatch: %v, want the second call's error", err)
	}
	var ok, failed int
	for _, s := range rec.Ended() {
		if s.SpanKind() != trace.SpanKindProducer {
			continue
		}
		if s.Status().Code == codes.Error {
			failed++
		} else {
			ok++
		}
	}
	if ok != bus.MaxBatchCall || failed != 10 {
		t.Fatalf("PRODUCER spans: %d clean, %d failed; want %d and 10", ok, failed, bus.MaxBatchCall)
	}
}

// TestFireBatchScheduled: delayed batches are scheduled event by event,
// each under its own ID.
func TestFireBatchScheduled(t *testing.T) {
	b, err := bus.New(bus.Config{Service: "orders", Transport: "memory://"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ev := bus.NewEvent[int]("orders", "later")
	ctx := context.Background()
	ids, err := bus.FireBatch(ctx, b, ev, []int{1, 2}, bus.WithDelay(time.Hour))
	if err != nil || len(ids) != 2 {
		t.Fatalf("delayed FireBatch = %v, %v", ids, err)
	}
	for _, id := range ids {
		if err := bus.CancelScheduled(ctx, b, id); err != nil {
			t.Errorf("cancel %s: %v, want it scheduled", id, err)
		}
	}
}
