package amqp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/engine"
)

func init() {
	opener := func(ctx context.Context, u *url.URL, opts transports.OpenOptions) (transports.Transport, error) {
		return Open(ctx, u, opts)
	}
	transports.Register("amqp", opener)
	transports.Register("amqps", opener)
}

// Transport is the AMQP transport: a publisher on its own connection and
// subscribers sharing a second connection, both reconnected with backoff
// after a loss. It implements transports.Transport and
// transports.DeadLetterStore. It is safe for concurrent use.
type Transport struct {
	o        Options
	tp       topology
	dialURL  string
	redacted string
	service  string
	log      *slog.Logger

	// dialCtx is given to every dial of the publishing and consumer
	// connections, and of the records' connections; Close cancels it
	// (abortDials, cause transports.ErrClosed) first thing, which aborts
	// a dial under way, connect or handshake: a connection made during
	// Close would serve nothing, and its dial is bounded only by
	// connection_timeout.
	dialCtx    context.Context
	abortDials context.CancelCauseFunc

	pubConn *connection
	pool    *confirmPool
	admin   *admin
	// exchangeOn is the publisher connection the exchange was declared on.
	exchangeOn atomic.Pointer[amqp091.Connection]

	mu      sync.Mutex // guards subConn
	subConn *connection
	// subCork is the network connection of the consumer connection's
	// latest dial, corked around flushes of settlements.
	subCorkMu sync.Mutex
	subCork   *corkConn
	subs      transports.Subscribers[*engine.Subscriber]

	// sched is the mover of scheduled events (schedule.go).
	sched scheduler
}

var (
	_ transports.Transport       = (*Transport)(nil)
	_ transports.DeadLetterStore = (*Transport)(nil)
)

// Open connects to the broker of u (amqp:// or amqps://) with the options
// of its query (see Options and ParseURL) and declares the exchange. The
// error of an unreachable broker or a bad URL is returned at once; later
// connection losses are recovered in the background.
func Open(ctx context.Context, u *url.URL, opts transports.OpenOptions) (*Transport, error) {
	dialURL, o, err := ParseURL(u)
	if err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	t := &Transport{
		o: o, tp: topology{o: o}, dialURL: dialURL, redacted: transports.Redact(u), service: opts.Service,
		log: opts.Logger.With(slog.String("transport", "amqp")),
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t.dialCtx, t.abortDials = context.WithCancelCause(context.Background())
	t.pool = newConfirmPool(o.ChannelPoolSize, o.ConfirmTimeout)
	// The first connection is bounded by ctx as well (a port that is not
	// RabbitMQ's would hold the handshake for the whole timeout);
	// reconnections get the full timeout.
	timeout := t.connectionTimeout()
	first := timeout
	if d, ok := ctx.Deadline(); ok {
		first = max(min(timeout, time.Until(d)), time.Millisecond)
	}
	corkingFirst, corking := t.pool.dialer(first), t.pool.dialer(timeout)
	var dialed atomic.Bool
	openCtx := ctx
	t.pubConn, err = openConnection(t.dialCtx, t.connName("publish"), func(ctx context.Context, name string) (*amqp091.Connection, error) {
		if !dialed.Swap(true) {
			// Open's own dial: its ctx aborts it too (a cancel, not only
			// the deadline).
			fctx, done := joinCancel(ctx, openCtx)
			defer done()
			return t.dialWith(fctx, name, corkingFirst)
		}
		return t.dialWith(ctx, name, corking)
	}, o.ReconnectMax, t.log)
	if err != nil {
		t.abortDials(err)
		return nil, err
	}
	t.pool.start(t.pubConn)
	t.admin = &admin{conn: t.pubConn}
	if err := t.ensureExchange(); err != nil {
		t.abortDials(err)
		t.pool.close()
		_ = t.pubConn.close()
		return nil, err
	}
	return t, nil
}

func (t *Transport) connName(role string) string {
	name := "busline"
	if t.service != "" {
		name += " " + t.service
	}
	return name + " " + role
}

// dialWith is dial over the network dialer netDial (nil: TCP as amqp091
// dials, see dialTCP), aborted by ctx: its connect, and its TLS and AMQP
// handshakes, whose network connection is closed when ctx is done before
// they completed (the deadline amqp091 sets on it is connection_timeout).
// The error of an aborted dial wraps context.Cause(ctx). A connection made
// is not watched by ctx any more: ctx never closes a healthy connection.
func (t *Transport) dialWith(ctx context.Context, name string, netDial netDialer) (*amqp091.Connection, error) {
	if netDial == nil {
		timeout := t.connectionTimeout()
		netDial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialTCP(ctx, timeout, network, addr)
		}
	}
	// amqp091 calls Dial once, before the handshakes, in this goroutine
	// (its Config.Recovery, which would call it again from another one, is
	// never set here); a second call is refused all the same.
	var unwatch func() bool
	dial := func(network, addr string) (net.Conn, error) {
		if unwatch != nil {
			return nil, errors.New("amqp: dial called twice")
		}
		nc, err := netDial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		unwatch = context.AfterFunc(ctx, func() { _ = nc.Close() })
		return nc, nil
	}
	props := amqp091.NewConnectionProperties()
	props.SetClientConnectionName(name)
	conn, err := amqp091.DialConfig(t.dialURL, amqp091.Config{Properties: props, Dial: dial})
	if unwatch != nil && !unwatch() && err == nil {
		// The handshakes completed as ctx ended: the network connection is
		// closed, or about to be, under a connection that looks open.
		_ = conn.CloseDeadline(time.Now().Add(closeHandshake))
		err = amqp091.ErrClosed
	}
	if err != nil {
		if ctx.Err() != nil {
			// amqp091 reports a handshake cut short after connection.start
			// as a refused login or vhost (403): the cause is ctx, and the
			// error is only shown, not wrapped, so that it never reads as
			// transports.ErrAccessRefused.
			return nil, fmt.Errorf("%w: dial abandoned (%v)", context.Cause(ctx), err)
		}
		return nil, err
	}
	return conn, nil
}

// joinCancel returns a context derived from base that also ends when
// extra does (with extra's cause), and the function that releases it.
func joinCancel(base, extra context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(base)
	stop := context.AfterFunc(extra, func() { cancel(context.Cause(extra)) })
	return ctx, func() { stop(); cancel(nil) }
}

// connectionTimeout is the dial and handshake timeout the URL asks for
// (query connection_timeout, in milliseconds), or amqp091's default.
func (t *Transport) connectionTimeout() time.Duration {
	if uri, err := amqp091.ParseURI(t.dialURL); err == nil && uri.ConnectionTimeout > 0 {
		return time.Duration(uri.ConnectionTimeout) * time.Millisecond
	}
	return 30 * time.Second
}

// ensureExchange declares the exchange once per publisher connection, so
// that it is declared again after a reconnection.
func (t *Transport) ensureExchange() error {
	conn, err := t.pubConn.current()
	if err != nil {
		return err
	}
	if t.exchangeOn.Load() == conn {
		return nil
	}
	return t.admin.do(func(ch *amqp091.Channel, _ map[string]bool) error {
		if err := t.tp.declareExchange(ch); err != nil {
			return err
		}
		t.exchangeOn.Store(conn)
		return nil
	})
}

// Options returns the options the transport runs with, defaults applied.
func (t *Transport) Options() Options { return t.o }

// Publish publishes every message to the exchange with the topic (the event
// name) as routing key, and returns once the broker confirmed all of them.
// During a connection outage it returns an error wrapping ErrNotConnected.
// Each message's context bounds its send and wait.
func (t *Transport) Publish(topic string, msgs ...*message.Message) error {
	if t.isClosed() {
		return transports.ErrClosed
	}
	if err := t.ensureExchange(); err != nil {
		return fmt.Errorf("amqp: publish %s: %w", topic, err)
	}
	if len(msgs) == 0 {
		return nil
	}
	pubs := make([]amqp091.Publishing, len(msgs))
	for i, m := range msgs {
		p, err := Marshaler{}.Marshal(m)
		if err != nil {
			return fmt.Errorf("amqp: marshal %s: %w", m.UUID, err)
		}
		pubs[i] = p
	}
	if err := t.pool.publish(msgs[0].Context(), t.o.Exchange, topic, pubs...); err != nil {
		return fmt.Errorf("amqp: publish %s: %w", topic, err)
	}
	return nil
}

// publishToQueue publishes to one queue through the default exchange, after
// making sure the queue exists with args.
func (t *Transport) publishToQueue(ctx context.Context, queue string, args amqp091.Table, pub amqp091.Publishing) error {
	if args != nil {
		if err := t.admin.ensure(t.tp, queue, args); err != nil {
			return err
		}
	}
	return t.pool.publish(ctx, "", queue, pub)
}

// NewSubscriber returns a subscriber reading as member cfg.Consumer of
// group cfg.Group. The first subscriber opens the transport's consumer
// connection, named after the process.
func (t *Transport) NewSubscriber(cfg transports.SubscriberConfig) (message.Subscriber, error) {
	s, err := t.newSubscriber(cfg, amqpDriver{t: t})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// newSubscriber is NewSubscriber reading through d.
func (t *Transport) newSubscriber(cfg transports.SubscriberConfig, d amqpDriver) (*engine.Subscriber, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := t.tp.checkGroup(cfg.Group); err != nil {
		return nil, fmt.Errorf("%w: %w", transports.ErrInvalidConfig, err)
	}
	if err := checkShort("consumer name (the consumer tag)", cfg.Consumer); err != nil {
		return nil, fmt.Errorf("%w: %w", transports.ErrInvalidConfig, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.consumerConnLocked(cfg.Consumer); err != nil {
		return nil, err
	}
	var s *engine.Subscriber
	s, err := engine.New(d, cfg, engine.Options{Logger: t.log, OnClose: func() { t.subs.Remove(s) }})
	if err != nil {
		return nil, err
	}
	if err := t.subs.Add(s); err != nil {
		return nil, err
	}
	t.startMoverIfScheduled()
	return s, nil
}

// consumerConnLocked opens the transport's consumer connection, named
// after the process, unless it is open; t.mu is held.
func (t *Transport) consumerConnLocked(consumer string) error {
	if t.subs.Closed() {
		return transports.ErrClosed
	}
	if t.subConn == nil {
		// Under t.mu: Close aborts the dial (dialCtx) before it takes t.mu.
		corking := corkingDialer(t.connectionTimeout(), &t.subCorkMu, &t.subCork)
		conn, err := openConnection(t.dialCtx, t.connName(consumer+" consume"), func(ctx context.Context, name string) (*amqp091.Connection, error) {
			return t.dialWith(ctx, name, corking)
		}, t.o.ReconnectMax, t.log)
		if err != nil {
			return err
		}
		t.subConn = conn
	}
	return nil
}

// consumerCork returns the network connection of the consumer
// connection's latest dial (nil before the first).
func (t *Transport) consumerCork() *corkConn {
	t.subCorkMu.Lock()
	defer t.subCorkMu.Unlock()
	return t.subCork
}

func (t *Transport) isClosed() bool { return t.subs.Closed() }

// closeBudget bounds Close on a broker that stopped answering, or that
// blocked the publishing connection (a memory or disk alarm: RabbitMQ then
// stops reading from it but keeps it alive, so its heartbeats never
// declare it dead): what Close still waits for after it, the broker's
// replies to a consumer's cancel, a channel to open, a close handshake,
// ends with the connections. closeHandshake bounds each connection's
// close handshake on its own.
const (
	closeBudget    = 10 * time.Second
	closeHandshake = 3 * time.Second
)

// dropConnections makes the transport's connections final and closes the
// network connections under them, which fails every call still waiting
// for the broker on them: Close's way out when the broker does not answer
// within closeBudget. subConn is the consumer connection, nil when none
// was opened.
func (t *Transport) dropConnections(subConn *connection) {
	t.pubConn.stopReconnecting()
	if c := t.pool.latestCork(); c != nil {
		_ = c.Conn.Close()
	}
	if subConn != nil {
		subConn.stopReconnecting()
		if c := t.consumerCork(); c != nil {
			_ = c.Conn.Close()
		}
	}
}

var _ transports.ConnectionDropper = (*Transport)(nil)

// DropConnections implements transports.ConnectionDropper: it aborts the
// dials under way and closes the network connections under the
// publishing and consuming connections, for good: every call still
// waiting for the broker fails at once, deliveries not acknowledged go
// back to their queues, and publishes in flight fail with
// ErrNotConfirmed. Close, which drops them itself after closeBudget, still
// releases the rest.
func (t *Transport) DropConnections() bool {
	t.log.Warn("amqp: dropping the connections to the broker")
	t.abortDials(transports.ErrClosed)
	t.mu.Lock()
	subConn := t.subConn
	t.mu.Unlock()
	t.dropConnections(subConn)
	return true
}

// Close closes every subscriber (see Subscriber.Close), then the channels
// and connections. Unacknowledged deliveries go back to their queues.
// A dial under way (a reconnection, or the first consumer connection of a
// listener starting) is aborted at once, and none starts after: it fails
// with an error wrapping transports.ErrClosed; open connections are closed
// gracefully. A connection that is down when Close starts is not waited
// for: unread deliveries a subscriber cannot republish on it go back to
// their queue by a nack (which counts a delivery). On a broker that does not answer, it returns within about
// closeBudget (10 s), dropping the connections.
func (t *Transport) Close() error {
	// First: a consumer connection's first dial holds mu.
	t.abortDials(transports.ErrClosed)
	// Under mu, so that no NewSubscriber opens a consumer connection after this.
	t.mu.Lock()
	subs, first := t.subs.MarkClosed()
	subConn := t.subConn
	t.mu.Unlock()
	if !first {
		return nil
	}
	dropped := make(chan struct{})
	watchdog := time.AfterFunc(closeBudget, func() {
		defer close(dropped)
		t.log.Warn("amqp: the broker did not answer the close in time; dropping the connections", slog.Duration("after", closeBudget))
		t.dropConnections(subConn)
	})
	var errs []error
	for _, s := range subs {
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	t.stopMover()
	if t.subConn != nil {
		if err := t.subConn.close(); err != nil {
			errs = append(errs, err)
		}
	}
	t.pool.close()
	if err := t.pubConn.close(); err != nil {
		errs = append(errs, err)
	}
	if !watchdog.Stop() { // it fired
		<-dropped
		errs = append(errs, fmt.Errorf("%w: the broker did not answer within %s; the connections were dropped", ErrNotConnected, closeBudget))
	}
	if len(errs) > 0 {
		return fmt.Errorf("amqp: close: %w", errors.Join(errs...))
	}
	return nil
}
