package bus

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/busline/busline/transports"
)

// readState tracks whether a listener's workers are reading.
type readState struct {
	workers atomic.Int32
	ended   atomic.Bool // every worker returned while the bus was open
}

func (r *readState) start(n int) {
	r.ended.Store(false)
	r.workers.Store(int32(n))
}

// stop is deferred by each worker: when the last one returns while the bus
// is not closing, the subscription ended on its own.
func (r *readState) stop(closed *atomic.Bool) {
	if r.workers.Add(-1) == 0 && !closed.Load() {
		r.ended.Store(true)
	}
}

// pinger is a transport that can check that its broker answers.
type pinger interface {
	Ping(ctx context.Context) error
}

// Live reports whether the bus is alive: nil unless it is closed or a
// listener's subscription ended on its own (its transport gave up), in
// which case only a restart of the process brings the listener back. It
// does not touch the broker: a broker outage the transport reconnects
// from is a matter for Ready, not a reason to restart the process.
func (b *Bus) Live() error {
	if b.closed.Load() || b.closing.Err() != nil {
		return ErrClosed // the listeners stop reading as Close begins
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.listeners {
		if b.started && l.reading.ended.Load() {
			return fmt.Errorf("bus: listener %q (group %s) stopped reading %s", l.name, l.group, l.topic)
		}
	}
	return nil
}

// Ready reports whether the bus can take and deliver events now: it is
// started and not closed, every listener is subscribed and reading, and
// the transport answers within ctx (its Ping, else an inspection of the
// bus's own events and groups, when the transport has either). The error
// wraps ErrNotReady (or ErrClosed) and says what is missing.
func (b *Bus) Ready(ctx context.Context) error {
	if b.closed.Load() {
		return ErrClosed
	}
	if err := b.Live(); err != nil {
		return fmt.Errorf("%w: %w", ErrNotReady, err)
	}
	b.mu.Lock()
	started := b.started
	var events, groups []string
	for _, l := range b.listeners {
		events, groups = append(events, l.topic), append(groups, l.group)
	}
	b.mu.Unlock()
	if !started && len(groups) > 0 {
		return fmt.Errorf("%w: not started", ErrNotReady)
	}
	if err := b.ping(ctx, events, groups); err != nil {
		return fmt.Errorf("%w: transport %s unreachable: %w", ErrNotReady, b.scheme, err)
	}
	return nil
}

func (b *Bus) ping(ctx context.Context, events, groups []string) error {
	switch t := b.transport.(type) {
	case pinger:
		return t.Ping(ctx)
	case transports.Inspector:
		_, err := t.Inspect(ctx, transports.InspectOptions{Events: events, Groups: groups})
		if errors.Is(err, transports.ErrUnsupported) {
			return nil // nothing to ask the broker about: reachable as far as we know
		}
		return err
	}
	return nil
}

// HealthCheckTimeout bounds one readiness check of HealthHandler.
const HealthCheckTimeout = 5 * time.Second

// HealthHandler serves probes for orchestrators such as Kubernetes: a path
// ending in /healthz or /livez answers Live, one ending in /readyz answers
// Ready (bounded by HealthCheckTimeout); 200 "ok" when healthy, 503 with
// the reason otherwise, 404 for any other path.
//
//	mux.Handle("/healthz", b.HealthHandler())
//	mux.Handle("/readyz", b.HealthHandler())
func (b *Bus) HealthHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var err error
		switch p := strings.TrimSuffix(r.URL.Path, "/"); {
		case strings.HasSuffix(p, "/healthz"), strings.HasSuffix(p, "/livez"):
			err = b.Live()
		case strings.HasSuffix(p, "/readyz"):
			ctx, cancel := context.WithTimeout(r.Context(), HealthCheckTimeout)
			defer cancel()
			err = b.Ready(ctx)
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "%v\n", err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
}
