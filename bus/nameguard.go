package bus

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/busline/busline/idempotency"
)

// Timing of the process-name leases (nameGuard).
const (
	nameLeaseFor   = 9 * time.Second
	nameLeaseEvery = 3 * time.Second
	// nameLeaseSlack is how long past the end of the lease first seen a
	// name must still be held, at two checks in a row, to count as
	// renewed; a check slower than half of it is not used.
	nameLeaseSlack = 2 * time.Second
)

// nameGuard tells two live processes that share a process name in a
// consumer group from a restart. Process names must be unique among the
// live processes of a group: a process takes over the idempotency leases
// and the own pending events of an earlier run of its name at once, as
// the leavings of a dead process. Two live processes with one name
// therefore run each other's events twice.
//
// While the bus is started, the guard holds a lease on its name in each
// of its groups, in the shared idempotency store
// ("busline.process:{group}/{process}"), and renews it. A process that
// finds the name leased by another watches the lease: one left by a dead
// run ends when it was due and is taken then; one still held well past
// that, at two checks in a row, was renewed by a live process, which the
// guard reports as an error in the log. It changes nothing else.
type nameGuard struct {
	store idempotency.Store
	ext   idempotency.LeaseExtender
	log   *slog.Logger
	// leaseFor and slack are nameLeaseFor and nameLeaseSlack but in tests.
	leaseFor, slack time.Duration

	mu    sync.Mutex
	names []*leasedName

	stop   chan struct{}
	done   chan struct{}
	cancel context.CancelFunc // ends a check under way at close
}

// leasedName is the lease of the process name in one group.
type leasedName struct {
	group, key string
	held       *idempotency.Lease
	// Another holder's lease: when it was due when first seen (from a
	// check that took less than slack/2), and how many checks in a row
	// found it held past that by more than slack.
	dueFirst  time.Time
	past      int
	duplicate bool
}

// newNameGuard returns a guard of process in groups on store, or nil when
// store cannot extend a lease (the guard would have to take the name
// again at every renewal).
func newNameGuard(store idempotency.Store, process string, groups []string, log *slog.Logger) *nameGuard {
	ext, ok := store.(idempotency.LeaseExtender)
	if !ok || len(groups) == 0 {
		return nil
	}
	g := &nameGuard{store: store, ext: ext, log: log, leaseFor: nameLeaseFor, slack: nameLeaseSlack}
	for _, group := range groups {
		g.names = append(g.names, &leasedName{group: group, key: idempotency.ProcessNameKey(group, process)})
	}
	return g
}

// start checks the names now, within startCtx and at most a third of a
// lease in all (a slow store does not hold Start up longer), and then
// every interval until close. The first check is made before start
// returns, so a bus that has started holds its name (or has seen its
// holder) before another process of the name starts: the later one is the
// one that reports.
func (g *nameGuard) start(startCtx context.Context, every time.Duration) {
	first, cancel := context.WithTimeout(startCtx, g.leaseFor/3)
	g.check(first)
	cancel()
	g.stop, g.done = make(chan struct{}), make(chan struct{})
	var ctx context.Context
	ctx, g.cancel = context.WithCancel(context.Background())
	go func() {
		defer close(g.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-g.stop:
				return
			case <-t.C:
			}
			g.check(ctx)
		}
	}()
}

// close stops the checks and gives the names back, so that a restart
// takes them at once.
func (g *nameGuard) close() {
	if g.stop == nil {
		return
	}
	close(g.stop)
	g.cancel()
	<-g.done
	g.mu.Lock()
	defer g.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, n := range g.names {
		if n.held != nil {
			_ = g.store.Abort(ctx, *n.held)
			n.held = nil
		}
	}
}

// check renews or takes the name in every group.
func (g *nameGuard) check(ctx context.Context) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, n := range g.names {
		if ctx.Err() != nil {
			return
		}
		g.checkName(ctx, n)
	}
}

// checkName renews the lease it holds, or tries to take the name, and
// reports a live other holder once (and once more when it is gone).
func (g *nameGuard) checkName(ctx context.Context, n *leasedName) {
	ctx, cancel := context.WithTimeout(ctx, g.leaseFor/3)
	defer cancel()
	if n.held != nil {
		err := g.ext.Extend(ctx, *n.held, g.leaseFor)
		if err == nil {
			return
		}
		if !errors.Is(err, idempotency.ErrLeaseLost) {
			g.log.Debug("process name lease: renewal failed", slog.String("group", n.group), slog.Any("error", err))
			return
		}
		// Taken while this process could not renew it (a pause longer
		// than the lease): by a live process of the same name, or by one
		// started since.
		n.held = nil
	}
	start := time.Now()
	state, l, err := g.store.Begin(ctx, n.key, g.leaseFor)
	end := time.Now()
	if err != nil {
		g.log.Debug("process name lease: check failed", slog.String("group", n.group), slog.Any("error", err))
		return
	}
	switch state {
	case idempotency.Fresh:
		n.held, n.dueFirst, n.past = &l, time.Time{}, 0
		if n.duplicate {
			n.duplicate = false
			g.log.Info("the other live process with this process name is gone", slog.String("group", n.group))
		}
	case idempotency.Held:
		switch {
		case end.Sub(start) > g.slack/2:
			// Too slow to date the lease it saw; a later check will.
		case n.dueFirst.IsZero():
			n.dueFirst = l.Expires
		case start.After(n.dueFirst.Add(g.slack)):
			n.past++
		default:
			n.past = 0
		}
		if n.past >= 2 && !n.duplicate {
			n.duplicate = true
			g.log.Error("another live process uses this process name in this consumer group: each takes over the other's idempotency leases and pending events as those of a dead run, and events run twice; give every live process its own name (Config.Process, BUSLINE_PROCESS, such as \"{hostname}\")",
				slog.String("group", n.group))
		}
	}
}
