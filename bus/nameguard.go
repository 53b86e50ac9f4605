package bus

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/busline/busline/idempotency"
)

// Intervals of the process-name lease (nameGuard).
const (
	nameLeaseFor   = 15 * time.Second
	nameLeaseEvery = 5 * time.Second
)

// nameGuard tells two live processes that share a process name from a
// restart. Process names must be unique among live processes: a process
// takes over the idempotency leases and the own pending events of an
// earlier run of its name at once, as the leavings of a dead process. Two
// live processes with one name therefore run each other's events twice.
//
// While the bus is started, the guard holds a lease on its name in the
// shared idempotency store ("busline.process:{service}/{process}") and
// renews it. A process that finds the name leased by another watches the
// lease: one that is never renewed belonged to a dead run, and is taken
// once it expires; one renewed meanwhile belongs to a live process, which
// the guard reports as an error in the log. It changes nothing else.
type nameGuard struct {
	store       idempotency.Store
	ext         idempotency.LeaseExtender
	key         string
	process     string
	service     string
	log         *slog.Logger
	leaseFor    time.Duration
	renewedMore time.Duration // a foreign expiry moved by more than this was renewed

	mu        sync.Mutex
	held      *idempotency.Lease
	foreign   time.Time // expiry of the other holder's lease, when last seen
	duplicate atomic.Bool

	stop chan struct{}
	done chan struct{}
}

// newNameGuard returns a guard on store, or nil when store cannot extend a
// lease (the guard would have to take the name again at every renewal).
func newNameGuard(store idempotency.Store, service, process string, log *slog.Logger) *nameGuard {
	ext, ok := store.(idempotency.LeaseExtender)
	if !ok {
		return nil
	}
	return &nameGuard{
		store: store, ext: ext, key: idempotency.Key("busline.process", service+"/"+process),
		process: process, service: service, log: log,
		leaseFor: nameLeaseFor, renewedMore: nameLeaseEvery / 2,
	}
}

// start checks the name now and then every interval until close.
func (g *nameGuard) start(every time.Duration) {
	g.stop, g.done = make(chan struct{}), make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(g.done)
		defer cancel()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			g.check(ctx)
			select {
			case <-g.stop:
				return
			case <-t.C:
			}
		}
	}()
	go func() {
		select {
		case <-g.stop:
			cancel()
		case <-g.done:
		}
	}()
}

// close stops the checks and gives the name back, so that a restart takes
// it at once.
func (g *nameGuard) close() {
	if g.stop == nil {
		return
	}
	close(g.stop)
	<-g.done
	g.mu.Lock()
	held := g.held
	g.held = nil
	g.mu.Unlock()
	if held != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = g.store.Abort(ctx, *held)
	}
}

// check renews the lease it holds, or tries to take the name, and reports
// a live other holder once (and once more when it is gone).
func (g *nameGuard) check(ctx context.Context) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, g.leaseFor/3)
	defer cancel()
	if g.held != nil {
		err := g.ext.Extend(ctx, *g.held, g.leaseFor)
		if err == nil {
			return
		}
		if !errors.Is(err, idempotency.ErrLeaseLost) {
			g.log.Debug("process name lease: renewal failed", slog.Any("error", err))
			return
		}
		// Taken while this process could not renew it (a pause longer
		// than the lease): by a live process of the same name, or
		// by one started since.
		g.held = nil
	}
	state, l, err := g.store.Begin(ctx, g.key, g.leaseFor)
	if err != nil {
		g.log.Debug("process name lease: check failed", slog.Any("error", err))
		return
	}
	switch state {
	case idempotency.Fresh:
		g.held, g.foreign = &l, time.Time{}
		if g.duplicate.Swap(false) {
			g.log.Info("the other live process with this process name is gone", slog.String("process", g.process))
		}
	case idempotency.Held:
		renewed := !g.foreign.IsZero() && l.Expires.Sub(g.foreign) > g.renewedMore
		g.foreign = l.Expires
		if renewed && !g.duplicate.Swap(true) {
			g.log.Error("another live process uses this process name: each takes over the other's idempotency leases and pending events as those of a dead run, and events run twice; give every live process its own name (Config.Process, BUSLINE_PROCESS, such as \"{hostname}\")",
				slog.String("service", g.service), slog.String("process", g.process))
		}
	}
}
