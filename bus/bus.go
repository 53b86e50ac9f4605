package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/idempotency"
	"github.com/busline/busline/middleware"
	"github.com/busline/busline/tracing"
	"github.com/busline/busline/transports"
)

// Bus fires events and runs listeners on one transport. Make one with New,
// register listeners with Listen, then Start (or Run) it; Close it when done.
// Fire may be called before Start and from any goroutine. An event fired
// before Start reaches the consumer groups that exist already; the groups
// this bus creates at Start (a listener's first run) begin with the events
// fired after it (ListenerOptions.Since), so on memory:// and on a first
// deployment its own listeners do not see what it fired before Start.
type Bus struct {
	cfg       Config
	process   string
	run       string // new at every New: tells this run from earlier ones of the same process name
	scheme    string
	transport transports.Transport
	store     idempotency.Store
	log       *slog.Logger
	tel       *tracing.Telemetry

	mu        sync.Mutex
	listeners []*listenerSpec
	names     map[string]bool
	userMW    []message.HandlerMiddleware
	started   bool
	subs      []message.Subscriber
	schemas   schemaState // events fired and listened to, their validators (schema.go)

	randomProcess bool       // the process name changes at every start
	dedupShared   bool       // the dedup store is shared by processes
	guard         *nameGuard // holds the process name's lease while started
	maxPayload    int        // Config.MaxPayloadBytes, or less below a broker's message limit
	payloadLimit  string     // what sets maxPayload, for ErrPayloadTooLarge

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	stopReading context.CancelFunc // stops every subscription
	// closing ends when Close begins, before it waits for a Start in
	// progress: Start's broker calls and the subscriptions' reads run
	// within it, so that Close does not wait out a stalled broker's
	// timeouts behind a Start.
	closing       context.Context
	markClosing   context.CancelFunc
	handlerCtx    context.Context    // parent of every handler context
	cancelHandler context.CancelFunc // after ShutdownTimeout
	closeBudget   time.Duration      // CloseBudget but in tests
	inflight      sync.WaitGroup     // one per running handler chain
}

type listenerSpec struct {
	name, group, topic string
	opts               ListenerOptions
	handler            message.HandlerFunc
	chain              message.HandlerFunc
	reading            readState // for Ready and Live (health.go)
}

// New validates cfg, expands the process name and opens the transport and
// the idempotency store, allowing 30 s (NewContext takes a context). An
// unknown URL scheme is an error that names the package whose import
// registers it. A bad configuration is ErrInvalidConfig; a broker that
// cannot be reached is ErrUnavailable.
func New(cfg Config) (*Bus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return NewContext(ctx, cfg)
}

// Service returns the service name.
func (b *Bus) Service() string { return b.cfg.Service }

// Process returns the process name, placeholders expanded.
func (b *Bus) Process() string { return b.process }

// Transport returns the transport the bus runs on, for tools that need its
// capability interfaces (dead letters, inspection).
func (b *Bus) Transport() transports.Transport { return b.transport }

// Use adds Watermill middleware around every listener's handler, outermost
// first. It runs inside the default chain, right around the handler, so it
// sees every handler call that returns (each in-process retry included).
// A handler's panic passes through it to the recovery middleware outside
// the retries: the panic becomes an error, the delivery is not retried in
// process, and the broker delivers the event again (MaxDeliveries then
// dead-letters it). Call it before Start: after Start it fails with
// ErrStarted (after Close, ErrClosed) and adds nothing.
func (b *Bus) Use(m ...message.HandlerMiddleware) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed.Load():
		return ErrClosed
	case b.started:
		return fmt.Errorf("%w: add middleware before Start", ErrStarted)
	}
	b.userMW = append(b.userMW, m...)
	return nil
}

func (b *Bus) addListener(l *listenerSpec) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed.Load():
		return ErrClosed
	case b.started:
		return fmt.Errorf("%w: register listener %q before Start", ErrStarted, l.name)
	case b.names[l.name]:
		return fmt.Errorf("%w: %q is already registered in service %q; give each listener its own name", ErrDuplicateListener, l.name, b.cfg.Service)
	}
	b.names[l.name] = true
	b.listeners = append(b.listeners, l)
	return nil
}

// buildChain wraps a listener's handler in the default chain:
// tracing → recover → dead-letter → idempotency → retry → [attempt scope] → timeout → [Use] → handler.
func (b *Bus) buildChain(l *listenerSpec) message.HandlerFunc {
	o := l.opts
	var dedup, attempts message.HandlerMiddleware
	var done func(context.Context, *message.Message) (bool, error)
	if !o.DisableIdempotency {
		opts := idempotency.Options{
			Store: b.store, Group: l.group, Lease: o.AckTimeout, Retention: o.Retention, Logger: b.log,
			Holder:        idempotency.Holder{Process: b.process, Run: b.run},
			MeterProvider: b.cfg.MeterProvider,
		}
		// An event over MaxDeliveries this group handled before is acked
		// (and counted as a duplicate).
		done = idempotency.DoneCheck(opts)
		// Each in-process try in its own savepoint when the store runs the
		// handler in a transaction (Postgres): a failed try leaves no writes.
		attempts = idempotency.Attempts()
		dedup = idempotency.Middleware(opts)
	}
	return middleware.Chain(
		b.tel.Middleware(l.group, l.topic),
		middleware.Recover,
		middleware.DeadLetter(middleware.DeadLetterOptions{
			MaxDeliveries: o.MaxDeliveries, Sink: b.deadLetterSink(l), Logger: b.log, Done: done,
		}),
		dedup,
		middleware.Retry(o.Retry),
		attempts,
		middleware.Timeout(o.Timeout),
		middleware.Chain(b.userMW...),
	)(l.handler)
}

// deadLetterSink uses the transport's dead-letter destination; a transport
// without one gets the event published to "dead.{group}" with the reason in
// its metadata.
func (b *Bus) deadLetterSink(l *listenerSpec) middleware.DeadLetterSink {
	if dl, ok := b.transport.(transports.DeadLetterer); ok {
		return func(ctx context.Context, msg *message.Message, reason string, attempts int) error {
			return dl.DeadLetter(ctx, l.group, msg, reason, attempts)
		}
	}
	return func(ctx context.Context, msg *message.Message, reason string, attempts int) error {
		c := msg.Copy()
		c.Metadata.Set("busline-dead-reason", reason)
		c.Metadata.Set("busline-dead-attempts", strconv.Itoa(attempts))
		c.Metadata.Set("busline-dead-group", l.group)
		c.SetContext(ctx)
		return b.transport.Publish("dead."+l.group, c)
	}
}

// Start creates every listener's consumer group and starts reading. It
// returns once the groups exist, so that events fired afterwards reach
// every listener. ctx bounds the start only; stop the bus with Close. A
// Close during Start ends its broker calls, and Start returns an error
// matching ErrClosed.
func (b *Bus) Start(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(b.closing, cancel)()
	err := b.start(ctx)
	switch {
	case b.closing.Err() == nil || errors.Is(err, ErrClosed):
		return err
	case err == nil:
		return ErrClosed // started as Close began: it stops what started
	default:
		return fmt.Errorf("%w: closed during Start: %w", ErrClosed, err)
	}
}

func (b *Bus) start(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return ErrClosed
	}
	if b.started {
		return ErrStarted
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := b.claimGroups(ctx); err != nil {
		return err
	}
	b.warnTraps()
	if b.dedupShared {
		groups := make([]string, 0, len(b.listeners))
		for _, l := range b.listeners {
			groups = append(groups, l.group)
		}
		if b.guard = newNameGuard(b.store, b.process, groups, b.log); b.guard != nil {
			b.guard.start(ctx, nameLeaseEvery)
		}
	}
	b.started = true
	readCtx, stop := context.WithCancel(b.closing)
	gate := &handlerGate{}
	// Close and abortStart call stopReading: from then on no handler starts,
	// so Close's wait for in-flight handlers is bounded by ShutdownTimeout
	// even while workers are busy in handlers.
	b.stopReading = func() {
		gate.close()
		stop()
	}
	for _, l := range b.listeners {
		l.chain = b.buildChain(l)
		sub, err := b.transport.NewSubscriber(transports.SubscriberConfig{
			Group: l.group, Consumer: b.process, AckTimeout: l.opts.AckTimeout,
			Concurrency: l.opts.Concurrency, Since: l.opts.Since,
		})
		if err != nil {
			b.abortStart()
			return fmt.Errorf("bus: listener %q: %w", l.name, err)
		}
		b.subs = append(b.subs, sub)
		if err := b.subscribe(readCtx, l, sub, gate); err != nil {
			b.abortStart()
			return subscribeError(fmt.Errorf("listener %q: subscribe to %s: %w", l.name, l.topic, err))
		}
		b.log.Debug("listener started", slog.String("listener", l.name), slog.String("group", l.group), slog.String("event", l.topic))
	}
	b.publishSchemas(ctx)
	return nil
}

func (b *Bus) abortStart() {
	b.started = false // Start may be called again
	b.stopReading()
	if b.guard != nil {
		b.guard.close()
		b.guard = nil
	}
	for _, s := range b.subs {
		_ = s.Close()
	}
	b.subs = nil
}

// subscribe starts the listener's Concurrency workers on sub: one per slot
// when the transport's subscriber hands messages straight to them
// (transports.SlotSubscriber), else all on the subscription's channel.
func (b *Bus) subscribe(readCtx context.Context, l *listenerSpec, sub message.Subscriber, gate *handlerGate) error {
	if ss, ok := sub.(transports.SlotSubscriber); ok {
		slots, err := ss.SubscribeSlots(readCtx, l.topic)
		if err != nil {
			return err
		}
		l.reading.start(len(slots))
		for _, sl := range slots {
			go b.readSlot(l, sl, gate)
		}
		return nil
	}
	msgs, err := sub.Subscribe(readCtx, l.topic)
	if err != nil {
		return err
	}
	l.reading.start(l.opts.Concurrency)
	for range l.opts.Concurrency {
		go b.read(l, msgs, gate)
	}
	return nil
}

// read is one of a listener's Concurrency workers: it runs messages of the
// subscription through the chain until the subscription ends or reading
// stops. The transport bounds how many messages are in flight to the same
// number. A worker is not waited for: it ends when the subscription's
// channel closes (Close closes the subscribers) or when it finds reading
// stopped; the handlers it runs are waited for through inflight.
func (b *Bus) read(l *listenerSpec, msgs <-chan *message.Message, gate *handlerGate) {
	defer l.reading.stop(&b.closed)
	for msg := range msgs {
		if !gate.enter(&b.inflight) {
			// Handed out as reading stopped: left unsettled, the event
			// stays pending for this consumer and is delivered again.
			return
		}
		b.handle(l, msg, nil)
	}
}

// readSlot is read for one slot of a transports.SlotSubscriber: the
// worker takes each message from its slot and settles it there once
// handled, before the handler counts as finished (Close flushes what was
// settled before it).
func (b *Bus) readSlot(l *listenerSpec, sl transports.Slot, gate *handlerGate) {
	defer l.reading.stop(&b.closed)
	// Asked by Next before the message counts as delivered: once reading
	// stopped it goes back to the broker uncounted.
	admit := func() bool { return gate.enter(&b.inflight) }
	for {
		msg := sl.Next(admit)
		if msg == nil {
			return
		}
		b.handle(l, msg, sl)
	}
}

// handlerGate admits handlers into the in-flight group until reading stops,
// so that no handler is added to the group once Close waits for it.
type handlerGate struct {
	mu     sync.RWMutex
	closed bool
}

func (g *handlerGate) enter(inflight *sync.WaitGroup) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return false
	}
	inflight.Add(1)
	return true
}

func (g *handlerGate) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// handle runs the chain and acks on success, nacks on failure; an event is
// never acked while its handler has not returned nil or it was dead-lettered.
// A slot's message is settled on it once acked or nacked (or left out).
func (b *Bus) handle(l *listenerSpec, msg *message.Message, sl transports.Slot) {
	defer b.inflight.Done()
	if sl != nil {
		defer sl.Settle()
	}
	info := transports.Info(msg)
	if info.Topic == "" {
		info.Topic = l.topic
	}
	info.Group = l.group
	msg.SetContext(transports.WithDeliveryInfo(b.handlerCtx, info))
	_, err := l.chain(msg)
	if err == nil {
		if b.closed.Load() && b.handlerCtx.Err() != nil {
			// Past ShutdownTimeout the subscriptions are closed: the ack
			// cannot reach the broker.
			b.log.LogAttrs(context.Background(), slog.LevelWarn, "a handler returned after the shutdown timeout: its event is not acknowledged and will be delivered again (the idempotency middleware skips it if its store recorded it done)",
				slog.String("event_id", msg.UUID), slog.String("event", l.topic), slog.String("group", l.group))
		}
		msg.Ack()
		return
	}
	if b.closed.Load() && b.handlerCtx.Err() != nil {
		// Cancelled by shutdown: neither ack nor a delayed nack; the
		// event stays pending and a restarted process takes it at once.
		return
	}
	if info.RetryAfter <= 0 {
		info.RetryAfter = l.opts.Retry.RedeliveryDelay(info.Attempt)
	}
	b.log.LogAttrs(context.Background(), slog.LevelDebug, "handler failed; event will be redelivered",
		slog.String("event_id", msg.UUID), slog.String("event", l.topic), slog.String("group", l.group),
		slog.Int("attempt", info.Attempt), slog.Duration("retry_after", info.RetryAfter), slog.Any("error", err))
	msg.Nack()
}

// Run starts the bus, blocks until ctx is done, then closes it and
// returns what Close returns. When ctx ends during the start (a signal
// while the broker is slow to answer), Close begins at once and ends the
// start; Run returns what Close returns. A start that fails by itself
// closes the bus and returns the start's error.
func (b *Bus) Run(ctx context.Context) error {
	closed := make(chan error, 1)
	stop := context.AfterFunc(ctx, func() { closed <- b.Close() })
	switch err := b.Start(ctx); {
	case err == nil:
		return <-closed
	case errors.Is(err, ErrStarted):
		stop() // another Start or Run runs the bus: not this Run's to close
		return err
	case stop():
		_ = b.Close()
		return err
	default:
		return <-closed
	}
}

// CloseBudget bounds the broker's part of Close: flushing the last
// acknowledgements, removing the process's liveness record, closing the
// subscriptions and the transport. On a broker that does not answer
// within it, Close drops the connections of the transport and of the
// dedup store (those that implement transports.ConnectionDropper), which
// fails whatever still waits on the broker, and returns an error matching
// ErrConnectionsDropped.
const CloseBudget = 10 * time.Second

// Close stops taking new events, waits for in-flight handlers (at most
// Config.ShutdownTimeout), flushes their acknowledgements with a live
// context and closes the transport. When the timeout passes, the contexts
// of the handlers still running are cancelled and Close waits at most one
// more second for them to return, so that their events are released at
// once. The broker's part of Close then has CloseBudget: allow
// ShutdownTimeout plus a second plus CloseBudget, and a few seconds more
// for what follows the drop, in a grace period.
//
// A Close that comes while Start waits on the broker ends Start's broker
// calls. When the start did not complete (no listener handled anything),
// the wait for it and the rest of Close share one CloseBudget; when Start
// completed just as Close took over, the wait for it counts on top of the
// bound above.
//
// Events whose handlers did not finish, or whose acknowledgements did not
// reach the broker, stay unacknowledged and are delivered again. Close is
// idempotent.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		// A Start in progress holds b.mu while it waits on the broker:
		// closing ends its broker calls, and the close budget covers the
		// wait for the calls a client does not end early (a go-redis
		// read, say).
		b.markClosing()
		begun := time.Now()
		startWait := b.startCloseBudget(b.closeBudget)
		b.mu.Lock()
		droppedEarly := startWait.stop()
		b.closed.Store(true)
		subs := b.subs
		started := b.started
		guard := b.guard
		b.mu.Unlock()
		var errs []error
		if started {
			b.stopReading()
			b.drainHandlers()
		}
		// The broker's part has CloseBudget; on a bus that never started
		// (a Close that ended a Start) it has what is left of the budget
		// the wait for Start began: no listener handled anything.
		left := b.closeBudget
		if !started {
			left = max(b.closeBudget-time.Since(begun), 0)
		}
		var budget *closeBudget
		if !droppedEarly { // dropped already: nothing left to drop
			budget = b.startCloseBudget(left)
		}
		if started {
			for _, s := range subs {
				errs = append(errs, s.Close())
			}
			if guard != nil {
				guard.close() // the name is free for a restart at once
			}
		}
		b.cancelHandler()
		errs = append(errs, b.tel.Close(), b.transport.Close(), b.store.Close())
		if droppedEarly || budget.stop() {
			errs = append([]error{fmt.Errorf("%w: the broker did not answer within %s", ErrConnectionsDropped, b.closeBudget)}, errs...)
		}
		b.closeErr = errors.Join(errs...)
	})
	return b.closeErr
}

// drainHandlers waits for the handlers in flight, at most
// ShutdownTimeout; then it cancels their contexts and waits one more
// second at most.
func (b *Bus) drainHandlers() {
	// One waiter: it ends when the last handler returns (a handler that
	// never returns keeps it, as it keeps its own goroutine).
	drained := make(chan struct{})
	go func() {
		b.inflight.Wait()
		close(drained)
	}()
	if !waitOrTimeout(drained, b.cfg.ShutdownTimeout) {
		b.log.Warn("shutdown timeout: handlers still running are cancelled; their events will be redelivered",
			slog.Duration("shutdown_timeout", b.cfg.ShutdownTimeout))
		b.cancelHandler()
		waitOrTimeout(drained, time.Second)
	}
}

// closeBudget is the timer of CloseBudget over the broker's part of Close.
type closeBudget struct {
	timer *time.Timer
	done  chan struct{} // closed once the timer's function returned
	// dropped: the timer fired and dropped the connections of the
	// transport or the store (written before done is closed).
	dropped bool
}

// startCloseBudget starts the timer that drops the connections of the
// transport and the store when the broker's part of Close outlasts d
// (CloseBudget, or what is left of it).
func (b *Bus) startCloseBudget(d time.Duration) *closeBudget {
	cb := &closeBudget{done: make(chan struct{})}
	cb.timer = time.AfterFunc(d, func() {
		defer close(cb.done)
		b.log.Warn("the broker did not answer the close in time: dropping the connections; events whose acknowledgements did not reach it will be delivered again",
			slog.Duration("close_budget", b.closeBudget), slog.Duration("waited", d))
		for _, c := range []any{b.transport, b.store} {
			if d, ok := c.(transports.ConnectionDropper); ok && d.DropConnections() {
				cb.dropped = true
			}
		}
		if !cb.dropped {
			b.log.Warn("neither the transport nor the dedup store has connections of its own to drop (a client passed in is the caller's): Close waits for their own timeouts")
		}
	})
	return cb
}

// stop stops the timer and reports whether it dropped connections, once
// the drop is over.
func (cb *closeBudget) stop() bool {
	if cb.timer.Stop() {
		return false
	}
	<-cb.done
	return cb.dropped
}

func waitOrTimeout(done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}
