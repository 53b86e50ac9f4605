package outbox_test

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/url"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/internal/syncbuf"
	"github.com/busline/busline/outbox"
	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/memory"
)

// gate decides whether the "refusing" transport of one test refuses
// publishes, and records the refused attempts and the publishes. When
// stall is set, the next publish closes stalled and waits until stall is
// closed.
type gate struct {
	mu        sync.Mutex
	calls     []int // the size of each publish call that went through
	refuse    bool
	attempts  []attempt
	published []string
	stall     chan struct{}
	stalled   chan struct{}
}

type attempt struct {
	at time.Time
	id string
}

var errRefused = errors.New("refused by the test")

var gates sync.Map // name → *gate

// refusing is a memory transport whose publishes its gate can refuse.
type refusing struct {
	transports.Transport
	g *gate
}

func (r refusing) Publish(topic string, msgs ...*message.Message) error {
	r.g.mu.Lock()
	if r.g.refuse {
		for _, m := range msgs {
			r.g.attempts = append(r.g.attempts, attempt{time.Now(), m.UUID})
		}
		r.g.mu.Unlock()
		return errRefused
	}
	stall, stalled := r.g.stall, r.g.stalled
	r.g.stall = nil
	r.g.mu.Unlock()
	if stall != nil {
		close(stalled)
		select {
		case <-stall:
		case <-msgs[0].Context().Done():
			return msgs[0].Context().Err() // as the Redis and AMQP transports do
		}
	}
	if err := r.Transport.Publish(topic, msgs...); err != nil {
		return err
	}
	r.g.mu.Lock()
	defer r.g.mu.Unlock()
	r.g.calls = append(r.g.calls, len(msgs))
	for _, m := range msgs {
		r.g.published = append(r.g.published, m.UUID)
	}
	return nil
}

func init() {
	transports.Register("refusing", func(ctx context.Context, u *url.URL, opts transports.OpenOptions) (transports.Transport, error) {
		g, ok := gates.Load(u.Host)
		if !ok {
			return nil, errors.New("no gate " + u.Host)
		}
		t, err := transports.Open(ctx, "memory://"+u.Host, opts)
		if err != nil {
			return nil, err
		}
		return refusing{t, g.(*gate)}, nil
	})
}

// stallNext lets publishes through and makes the next one wait until the
// returned channel is closed (or its message's context is done).
func (g *gate) stallNext() chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refuse = false
	g.stall, g.stalled = make(chan struct{}), make(chan struct{})
	return g.stall
}

// waitStalled waits until the publish stallNext stalls waits.
func (g *gate) waitStalled(t *testing.T) {
	t.Helper()
	g.mu.Lock()
	stalled := g.stalled
	g.mu.Unlock()
	select {
	case <-stalled:
	case <-time.After(10 * time.Second):
		t.Fatal("the relay did not publish in 10s")
	}
}

// newRefusingWorld is newWorld on a transport whose publishes g refuses.
func newRefusingWorld(t *testing.T) (*world, *gate) {
	name := "refusing-" + rand.Text()[:8]
	g := &gate{refuse: true}
	gates.Store(name, g)
	t.Cleanup(func() { gates.Delete(name); memory.Forget(name) })
	return newWorld(t, func(c *bus.Config) { c.Transport = "refusing://" + name }), g
}

// TestRefusedPublishBacksOff: an event the transport refuses is tried
// again, from that very event (nothing after it goes out first), with a
// growing pause between attempts instead of a hot loop; once the transport
// takes it, the backlog goes out in order.
func TestRefusedPublishBacksOff(t *testing.T) {
	w, g := newRefusingWorld(t)
	const maxBackoff = 400 * time.Millisecond
	ob := w.outbox(outbox.Options{MaxBackoff: maxBackoff})
	ids := w.fire(ob, true, 1, 2)
	if err := ob.Start(); err != nil {
		t.Fatal(err)
	}
	const tries = 6
	var got []attempt
	waitFor(t, 30*time.Second, "the relay to try the refused event again", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		got = append([]attempt(nil), g.attempts...)
		return len(got) >= tries
	})
	for i, a := range got[:tries] {
		if a.id != ids[0] {
			t.Fatalf("attempt %d published %s, want the refused first event %s again", i, a.id, ids[0])
		}
		if i == 0 {
			continue
		}
		// The backoff starts at 50ms and doubles up to MaxBackoff, with
		// jitter of ±25%: a pause can be longer than that, never shorter.
		least := time.Duration(0.75 * float64(min(50*time.Millisecond<<(i-1), maxBackoff)))
		if gap := a.at.Sub(got[i-1].at); gap < least {
			t.Fatalf("attempt %d came %s after the previous one, want at least %s (a hot loop)", i, gap, least)
		}
	}
	g.mu.Lock()
	g.refuse = false
	g.mu.Unlock()
	d := w.waitDeliveries(2, 30*time.Second)
	if d[0].id != ids[0] || d[1].id != ids[1] {
		t.Fatalf("deliveries after the transport recovered: %s, want 1 2", ns(d))
	}
}

// TestNotificationsDrainedWhileRefused: while the transport refuses, the
// relay keeps reading the table and so receives the notifications of the
// transactions that fire meanwhile; it must drop them as it goes (each
// read covers them), not pile them up in the connection for as long as
// the broker is down.
func TestNotificationsDrainedWhileRefused(t *testing.T) {
	w, _ := newRefusingWorld(t)
	ob := w.outbox(outbox.Options{MaxBackoff: 50 * time.Millisecond})
	var calls, buffered atomic.Int64
	outbox.SetAfterPublish(ob, func(conn *pgx.Conn) {
		// The notifications pgx holds for the connection: no API
		// reports them without taking them.
		f := reflect.ValueOf(conn).Elem().FieldByName("notifications")
		if !f.IsValid() {
			panic("pgx.Conn has no notifications field: update TestNotificationsDrainedWhileRefused")
		}
		buffered.Store(int64(f.Len()))
		calls.Add(1)
	})
	w.fire(ob, true, 0) // refused: the relay retries it
	if err := ob.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the relay retrying", func() bool { return calls.Load() > 0 })
	const fires = 20
	for n := range fires {
		w.fire(ob, true, n+1)
	}
	waitFor(t, 10*time.Second, "the relay to receive the notifications", func() bool { return buffered.Load() > 0 })
	waitFor(t, 10*time.Second, "the relay to drop the notifications it received", func() bool { return buffered.Load() == 0 })
}

// TestRelayStopsWhenItsSessionEnds: a relay whose database session ends
// while it is publishing a batch (here: terminated while a publish hangs)
// may have lost the lock to a standby; it checks its session before it
// publishes the rest of the batch after a slow publish, and stops instead
// of publishing on beside its successor. The next session publishes from
// the first unmarked event.
func TestRelayStopsWhenItsSessionEnds(t *testing.T) {
	w, g := newRefusingWorld(t)
	stall := g.stallNext()
	const poll = 50 * time.Millisecond
	ob := w.outbox(outbox.Options{PollInterval: poll})
	ids := w.fire(ob, true, 1, 2, 3)
	if err := ob.Start(); err != nil {
		t.Fatal(err)
	}
	g.waitStalled(t)
	// The relay lock's key ends with the table's OID: pg_locks.objid.
	holder := `FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = $1::regclass::oid
	AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`
	if n := w.count("SELECT count(pg_terminate_backend(pid)) "+holder, ob.Table()); n != 1 {
		t.Fatalf("terminated %d relay sessions, want 1", n)
	}
	waitFor(t, 10*time.Second, "the relay's session to end", func() bool { return w.count("SELECT count(*) "+holder, ob.Table()) == 0 })
	time.Sleep(2 * poll) // the publish is slow: it took longer than PollInterval
	close(stall)
	var got []string
	waitFor(t, 10*time.Second, "the events published again", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		got = append([]string(nil), g.published...)
		return len(got) >= 2
	})
	if got[0] != ids[0] || got[1] != ids[0] {
		t.Fatalf("published %v; want %s (the stalled publish), then %s again from the next session, not the rest of the batch (%v)", got, ids[0], ids[0], ids)
	}
}

// TestCloseDuringPublish: closing the outbox while its relay publishes
// stops the relay quietly: the publish cut short by the close is neither
// logged as a failure to retry nor counted as a publish error.
func TestCloseDuringPublish(t *testing.T) {
	w, g := newRefusingWorld(t)
	g.stallNext()
	var logs syncbuf.Buffer
	reader := sdkmetric.NewManualReader()
	ob := w.outbox(outbox.Options{
		Logger:        slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)),
	})
	w.fire(ob, true, 1)
	if err := ob.Start(); err != nil {
		t.Fatal(err)
	}
	g.waitStalled(t)
	closed := make(chan struct{})
	go func() {
		_ = ob.Close()
		close(closed)
	}()
	// Close cancels the relay's context at once; the stalled publish then
	// fails, its message's context being done.
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return in 10s")
	}
	if s := logs.String(); s != "" {
		t.Errorf("the relay logged while it was closed:\n%s", s)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == outbox.MetricPublishErrors {
				t.Errorf("%s recorded for a publish cut short by Close: %+v", m.Name, m.Data)
			}
		}
	}
}

// TestPublishRun: with PublishRun, consecutive events go to the transport
// in calls of up to that many, in order; a refused run is tried again from
// its first event, one event per call until past it, and nothing after it
// goes out first.
func TestPublishRun(t *testing.T) {
	w, g := newRefusingWorld(t)
	ob := w.outbox(outbox.Options{PublishRun: 10, MaxBackoff: 50 * time.Millisecond})
	payloads := make([]int, 25)
	for i := range payloads {
		payloads[i] = i
	}
	ids := w.fire(ob, true, payloads...)
	if err := ob.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the relay to try the first run, then its first event alone", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.attempts) >= 12
	})
	g.mu.Lock()
	for i, a := range g.attempts[:12] {
		want := ids[0] // after the run of 10, its first event alone
		if i < 10 {
			want = ids[i]
		}
		if a.id != want {
			g.mu.Unlock()
			t.Fatalf("refused attempt %d was %s, want %s", i, a.id, want)
		}
	}
	g.refuse = false
	g.mu.Unlock()
	d := w.waitDeliveries(25, 30*time.Second)
	if len(d) != 25 {
		t.Fatalf("%d deliveries, want 25: %s", len(d), ns(d))
	}
	for i, x := range d {
		if x.id != ids[i] {
			t.Fatalf("deliveries %s, want 0..24 in order", ns(d))
		}
	}
	// A call is recorded once the inner transport returned, which may be
	// after its events were delivered.
	waitFor(t, 10*time.Second, "every publish call recorded", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		n := 0
		for _, c := range g.calls {
			n += c
		}
		return n >= 25
	})
	g.mu.Lock()
	defer g.mu.Unlock()
	// The refused run goes again one event per call, then runs again.
	want := []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 10, 5}
	if !slices.Equal(g.calls, want) {
		t.Fatalf("publish calls of %v events, want %v", g.calls, want)
	}
}
