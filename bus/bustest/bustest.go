package bustest

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/middleware"
	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/memory"
)

// Bus is a bus on a private memory broker, with recorders of what was
// fired, handled and dead-lettered.
type Bus struct {
	*bus.Bus
	broker *memory.Broker
	url    string
	codec  bus.Codec

	mu      sync.Mutex
	handled []Handled
}

// Handled records one handler call seen by the bus.
type Handled struct {
	ID      string
	Event   string
	Group   string
	Attempt int
	Err     error
}

// Fired is one event on the broker.
type Fired struct {
	ID       string
	Event    string
	Payload  []byte
	Metadata map[string]string
}

// New returns a bus on a new private memory broker. cfg may be the zero
// Config: Service defaults to "test", Process to "test-process" and the
// logger discards every record (set cfg.Logger to see the bus's warnings,
// such as dead-lettered events). Transport is always the private broker.
// The bus is closed when the test ends.
func New(t testing.TB, cfg bus.Config) *Bus {
	t.Helper()
	name := "bustest-" + rand.Text()
	url := "memory://" + name
	if cfg.Service == "" {
		cfg.Service = "test"
	}
	if cfg.Process == "" {
		cfg.Process = "test-process"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 5 * time.Second
	}
	cfg.Transport = url
	b, err := bus.New(cfg)
	if err != nil {
		t.Fatalf("bustest: %v", err)
	}
	codec := cfg.Codec
	if codec == nil {
		codec = bus.JSONCodec{}
	}
	tb := &Bus{Bus: b, broker: memory.Named(name, 0), url: url, codec: codec}
	if err := b.Use(tb.record); err != nil {
		t.Fatalf("bustest: %v", err)
	}
	t.Cleanup(func() {
		_ = b.Close()
		memory.Forget(name)
	})
	return tb
}

// URL returns the memory:// URL of the private broker: another bus opened
// with it (bus.Config.Transport) is another process of the same deployment.
func (b *Bus) URL() string { return b.url }

// Broker returns the memory broker, for inspection.
func (b *Bus) Broker() *memory.Broker { return b.broker }

// record is the middleware that sees every handler call: one that panics
// is recorded with an error naming the panic, and the panic goes on to the
// bus's recovery middleware.
func (b *Bus) record(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) (out []*message.Message, err error) {
		panicked := true
		defer func() {
			if !panicked {
				return
			}
			// recover is nil while runtime.Goexit (t.FailNow in a
			// handler) unwinds: that goes on as it is, unrecorded.
			if r := recover(); r != nil {
				b.add(msg, fmt.Errorf("bustest: %w: %v", middleware.ErrPanic, r))
				panic(r)
			}
		}()
		out, err = h(msg)
		panicked = false
		b.add(msg, err)
		return out, err
	}
}

func (b *Bus) add(msg *message.Message, err error) {
	info := transports.Info(msg)
	b.mu.Lock()
	b.handled = append(b.handled, Handled{ID: msg.UUID, Event: info.Topic, Group: info.Group, Attempt: info.Attempt, Err: err})
	b.mu.Unlock()
}

// Start starts the bus or fails the test.
func (b *Bus) Start(t testing.TB) {
	t.Helper()
	if err := b.Bus.Start(context.Background()); err != nil {
		t.Fatalf("bustest: Start: %v", err)
	}
}

// WaitIdle blocks until every fired event has been acknowledged or
// dead-lettered by every consumer group (redeliveries after a backoff
// included), or returns an error when ctx is done first. It waits on the
// broker's change notifications, never on sleeps. An event fired with a
// delay (bus.WithDelay) counts once it is due: WaitIdle does not wait for
// the delay (Scheduled counts the events still waiting for theirs).
func (b *Bus) WaitIdle(ctx context.Context) error {
	for {
		changed := b.broker.Changed()
		if b.broker.Idle() {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("bustest: bus not idle%s: %w", b.busy(), ctx.Err())
		}
	}
}

// busy names the groups that still hold events, for WaitIdle's error: a
// handler that keeps failing waits for its redelivery delays (a test can
// shorten them with a listener's WithRetry RedeliveryDelay).
func (b *Bus) busy() string {
	var parts []string
	topics := b.broker.Topics()
	slices.Sort(topics)
	for _, topic := range topics {
		for _, g := range b.broker.Groups(topic) {
			if g.Pending > 0 || g.Lag > 0 {
				parts = append(parts, fmt.Sprintf("%s on %s: %d pending, %d not delivered", g.Group, topic, g.Pending, g.Lag))
			}
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, "; ") + "; a failing handler waits for its redelivery delay, which a test can shorten with WithRetry)"
}

// MustWaitIdle is WaitIdle with a 10-second limit that fails the test.
func (b *Bus) MustWaitIdle(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
}

// Scheduled reports, per event name, the events fired with a delay that
// are not due yet (they are in Fired once due).
func (b *Bus) Scheduled() []transports.ScheduledInfo { return b.broker.Scheduled() }

// DeliverScheduled delivers the events fired with a delay that are due
// within d from now, at once and in due order, as if the clock had moved
// d ahead (a negative or zero d: those due already), and returns how many
// it delivered. A test of a delayed event need not wait out its delay:
//
//	bus.Fire(ctx, b.Bus, reminder, r, bus.WithDelay(24*time.Hour))
//	b.DeliverScheduled(24 * time.Hour)
//	b.MustWaitIdle(t)
//
// Only the scheduled events move: the handlers and the bus still see the
// real clock.
func (b *Bus) DeliverScheduled(d time.Duration) int {
	return b.broker.MoveScheduled(time.Now().Add(max(d, 0)))
}

// Fired returns the events fired on event (all events when event is ""),
// oldest first: the events on the broker, which a delayed event reaches
// when it is due (see Scheduled).
func (b *Bus) Fired(event string) []Fired {
	topics := []string{event}
	if event == "" {
		topics = b.broker.Topics()
		slices.Sort(topics)
	}
	var out []Fired
	for _, topic := range topics {
		for _, m := range b.broker.Messages(topic) {
			out = append(out, Fired{ID: m.UUID, Event: topic, Payload: m.Payload, Metadata: m.Metadata})
		}
	}
	return out
}

// Handled returns the handler calls of group (all groups when group is ""), in order.
// It records the handlers of this bus only: a second bus opened on URL()
// (another process of the deployment) has its handlers to itself.
func (b *Bus) Handled(group string) []Handled {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Handled
	for _, h := range b.handled {
		if group == "" || h.Group == group {
			out = append(out, h)
		}
	}
	return out
}

// DeadLetters returns the dead letters of group.
func (b *Bus) DeadLetters(group string) []transports.DeadLetter {
	return b.broker.DeadLetters(group, 0)
}

// AssertFired fails the test unless n events were fired on event.
func (b *Bus) AssertFired(t testing.TB, event string, n int) {
	t.Helper()
	if got := len(b.Fired(event)); got != n {
		t.Errorf("bustest: %d events fired on %s, want %d", got, event, n)
	}
}

// AssertSucceeded fails the test unless group's handler succeeded (returned
// nil) for n distinct events. Failed calls are not counted: Handled lists
// every call, failures included.
func (b *Bus) AssertSucceeded(t testing.TB, group string, n int) {
	t.Helper()
	ok := map[string]bool{}
	for _, h := range b.Handled(group) {
		if h.Err == nil {
			ok[h.ID] = true
		}
	}
	if len(ok) != n {
		t.Errorf("bustest: group %s handled %d events successfully, want %d", group, len(ok), n)
	}
}

// AssertHandled is AssertSucceeded: it counts only the events the handler
// succeeded for.
//
// Deprecated: use AssertSucceeded, whose name says what it counts.
func (b *Bus) AssertHandled(t testing.TB, group string, n int) {
	t.Helper()
	b.AssertSucceeded(t, group, n)
}

// Group returns the consumer group of listener in this bus's service,
// "{service}-{listener}" (bus.GroupName), for Handled, DeadLetters and the
// assertions.
func (b *Bus) Group(listener string) string { return bus.GroupName(b.Service(), listener) }

// AssertListenerSucceeded is AssertSucceeded for the group of listener.
func (b *Bus) AssertListenerSucceeded(t testing.TB, listener string, n int) {
	t.Helper()
	b.AssertSucceeded(t, b.Group(listener), n)
}

// FiredPayloads returns the payloads fired as e on the bus, oldest first,
// decoded with the bus's codec; it fails the test when one does not
// decode into T.
func FiredPayloads[T any](t testing.TB, b *Bus, e bus.Event[T]) []T {
	t.Helper()
	var out []T
	for _, f := range b.Fired(e.Name()) {
		var v T
		if err := b.codec.Unmarshal(f.Payload, &v); err != nil {
			t.Fatalf("bustest: payload of %s %s does not decode into %T: %v", e.Name(), f.ID, v, err)
		}
		out = append(out, v)
	}
	return out
}

// AssertFired fails the test unless n events were fired as e: AssertFired
// of the bus, taking the event value rather than its name.
func AssertFired[T any](t testing.TB, b *Bus, e bus.Event[T], n int) {
	t.Helper()
	b.AssertFired(t, e.Name(), n)
}

// AssertDeadLettered fails the test unless group has n dead letters.
func (b *Bus) AssertDeadLettered(t testing.TB, group string, n int) {
	t.Helper()
	if got := len(b.DeadLetters(group)); got != n {
		t.Errorf("bustest: group %s has %d dead letters, want %d", group, got, n)
	}
}
