package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/engine"
)

func init() {
	transports.Register("nats", open)
	transports.Register("tls", open)
}

// Transport is the NATS JetStream transport. It implements
// transports.Transport, transports.DeadLetterStore, transports.Inspector,
// transports.Tailer, transports.RecordStore and transports.Scheduler, and
// is itself the
// driver.Driver its subscribers (the delivery engine) read through. Make
// one by opening a nats:// URL through the bus (or transports.Open), or
// with New.
type Transport struct {
	nc      *natsgo.Conn
	js      jetstream.JetStream
	ownConn bool
	opts    Options
	log     *slog.Logger

	// streams holds the event streams this transport made sure exist,
	// by event name.
	streams sync.Map
	// dead is set once the dead-letter stream exists.
	dead atomic.Bool
	// kv is the record bucket, once opened.
	kvMu sync.Mutex
	kv   jetstream.KeyValue

	// sched is the schedule stream, once known to exist; mover moves
	// due scheduled events (schedule.go, mover.go).
	sched atomic.Pointer[jetstream.Stream]
	mover *mover

	closed atomic.Bool
	subs   transports.Subscribers[*engine.Subscriber]
}

var (
	_ transports.Transport       = (*Transport)(nil)
	_ transports.DeadLetterStore = (*Transport)(nil)
	_ transports.Inspector       = (*Transport)(nil)
	_ transports.Tailer          = (*Transport)(nil)
	_ transports.RecordStore     = (*Transport)(nil)
)

func open(ctx context.Context, u *url.URL, o transports.OpenOptions) (transports.Transport, error) {
	cfg, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	name := "busline"
	if o.Service != "" {
		name += " " + o.Service
	}
	opts := append([]natsgo.Option{
		natsgo.Name(name),
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(DefaultReconnectWait),
		// No buffering while disconnected: Fire during an outage fails
		// at once instead of waiting for a PubAck that never comes.
		natsgo.ReconnectBufSize(-1),
		natsgo.Timeout(cfg.opts.Timeout),
		// A write to a server that stopped reading gives up after
		// Timeout, not nats.go's minute: closing (DropConnections too)
		// flushes under the lock a blocked write holds.
		natsgo.FlusherTimeout(cfg.opts.Timeout),
	}, cfg.conn...)
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	opts = append(opts,
		natsgo.DisconnectErrHandler(func(_ *natsgo.Conn, err error) {
			if err != nil {
				logger.Warn("nats: disconnected", "error", err)
			}
		}),
		natsgo.ReconnectHandler(func(c *natsgo.Conn) {
			logger.Info("nats: reconnected", "server", c.ConnectedUrlRedacted())
		}),
	)
	nc, err := natsgo.Connect(joinServers(cfg.servers), opts...)
	if err != nil {
		if errors.Is(err, natsgo.ErrAuthorization) || errors.Is(err, natsgo.ErrAuthExpired) || errors.Is(err, natsgo.ErrAuthRevoked) {
			err = fmt.Errorf("%w: %w", transports.ErrAccessRefused, err)
		}
		return nil, fmt.Errorf("nats: connect: %w", transports.RedactError(err, u.String()))
	}
	cfg.opts.Process = o.Process
	cfg.opts.NoScheduleMover = cfg.opts.NoScheduleMover || o.NoScheduleMover
	cfg.opts.KeepLimits = cfg.opts.KeepLimits || o.KeepLimits
	t, err := New(ctx, nc, cfg.opts, logger)
	if err != nil {
		nc.Close()
		return nil, err
	}
	t.ownConn = true
	return t, nil
}

func joinServers(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += ","
		}
		out += v
	}
	return out
}

// New returns a transport on an existing connection, which it does not
// close, with its mover of scheduled events running until Close (unless
// opts.NoScheduleMover). Zero fields of opts take the defaults of DefaultOptions, except
// MaxLen and DeadMaxLen (0 keeps everything). It checks that the server
// has JetStream enabled.
func New(ctx context.Context, nc *natsgo.Conn, opts Options, logger *slog.Logger) (*Transport, error) {
	if nc == nil {
		return nil, fmt.Errorf("%w: nats.New: nil connection", transports.ErrInvalidConfig)
	}
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(opts.Timeout))
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	actx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	if _, err := js.AccountInfo(actx); err != nil {
		return nil, fmt.Errorf("nats: JetStream unavailable on %s (start nats-server with -js): %w", nc.ConnectedUrlRedacted(), err)
	}
	t := &Transport{nc: nc, js: js, opts: opts, log: logger}
	t.mover = startMover(t)
	return t, nil
}

// Conn returns the NATS connection of the transport.
func (t *Transport) Conn() *natsgo.Conn { return t.nc }

// JetStream returns the JetStream context of the transport.
func (t *Transport) JetStream() jetstream.JetStream { return t.js }

// Options returns the options the transport runs with.
func (t *Transport) Options() Options { return t.opts }

// Close closes every subscriber still open (flushing their
// acknowledgements), stops the mover of scheduled events (giving its
// lease up) and closes the connection when the transport opened it. It
// is idempotent.
func (t *Transport) Close() error {
	first, err := t.subs.CloseAll()
	if !first {
		return nil
	}
	t.closed.Store(true)
	t.mover.stop()
	errs := []error{err}
	// Subscribers flushed their acknowledgements; this flush covers
	// whatever else is buffered, when there is a server to flush to.
	if t.nc.IsConnected() {
		errs = append(errs, t.nc.FlushTimeout(t.opts.Timeout))
	}
	if t.ownConn {
		t.nc.Close()
	}
	return errors.Join(errs...)
}

var _ transports.ConnectionDropper = (*Transport)(nil)

// DropConnections implements transports.ConnectionDropper: it closes the
// connection when the transport opened it, so that every call still
// waiting for the server (a flush, an acknowledgement's reply, a publish's)
// fails at once. A connection passed to New is left open, and
// DropConnections reports false.
func (t *Transport) DropConnections() bool {
	if !t.ownConn {
		return false
	}
	t.log.Warn("nats: dropping the connection to the server")
	t.nc.Close()
	return true
}

func (t *Transport) isClosed() bool { return t.closed.Load() }

// timeout returns ctx bounded by Options.Timeout when it has no deadline.
func (t *Transport) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, t.opts.Timeout)
}

var _ transports.MessageLimiter = (*Transport)(nil)

// MaxMessageBytes implements transports.MessageLimiter: the server's
// max_payload, which counts a message's headers with its body.
func (t *Transport) MaxMessageBytes() int { return int(t.nc.MaxPayload()) }
