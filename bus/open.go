package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/busline/busline/idempotency"
	"github.com/busline/busline/tracing"
	"github.com/busline/busline/transports"
)

// Option changes how NewContext builds a bus from values instead of URLs.
type Option func(*openOptions)

type openOptions struct {
	transport transports.Transport
	store     idempotency.Store
}

// WithTransport runs the bus on t, made in code (a TLS configuration, a
// custom client, a transport shared by tests), instead of opening
// Config.Transport. The bus owns t from then on and closes it on Close,
// as sql.OpenDB owns its connector; NewContext closes it when it fails.
// Config.Transport, when also set, is only used to name the messaging
// system in traces.
func WithTransport(t transports.Transport) Option {
	return func(o *openOptions) { o.transport = t }
}

// WithStore dedups events with s, made in code, instead of opening
// Config.Idempotency. The bus owns s and closes it on Close.
func WithStore(s idempotency.Store) Option {
	return func(o *openOptions) { o.store = s }
}

// IdempotencyProvider is implemented by transports that can keep the dedup
// records of a bus on their own broker (redisstream does, on the same
// Redis). When Config.Idempotency is empty, the bus asks the transport for
// its store, so that "each event effectively once" holds across processes
// without a second URL.
type IdempotencyProvider interface {
	IdempotencyStore(ctx context.Context) (idempotency.Store, error)
}

// NewContext is New with a context that bounds opening the transport and
// the store (New allows 30 s), and with options that build the bus from
// values made in code (WithTransport, WithStore), the way sql.OpenDB sits
// beside sql.Open.
//
// A bad configuration or URL is ErrInvalidConfig; a broker or store that
// cannot be reached is ErrUnavailable.
func NewContext(ctx context.Context, cfg Config, opts ...Option) (_ *Bus, err error) {
	var o openOptions
	for _, opt := range opts {
		opt(&o)
	}
	defer func() {
		if err != nil {
			if o.transport != nil {
				_ = o.transport.Close()
			}
			if o.store != nil {
				_ = o.store.Close()
			}
		}
	}()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	defaultStore := cfg.Idempotency == ""
	cfg = cfg.withDefaults()
	process, err := ExpandProcessName(cfg.Process)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With(slog.String("service", cfg.Service), slog.String("process", process))
	scheme := ""
	if o.transport == nil || cfg.Transport != "memory://" {
		u, err := transports.ParseURL(cfg.Transport)
		if err != nil {
			return nil, fmt.Errorf("%w: Transport: %w", ErrInvalidConfig, err)
		}
		scheme = u.Scheme
	}
	if o.transport == nil {
		o.transport, err = transports.Open(ctx, cfg.Transport, transports.OpenOptions{Service: cfg.Service, Process: process, Logger: log})
		if err != nil {
			return nil, openError("Transport", err)
		}
	} else {
		scheme = schemeOf(o.transport, scheme)
	}
	dedupShared := true
	if o.store == nil {
		if p, ok := o.transport.(IdempotencyProvider); ok && defaultStore {
			o.store, err = p.IdempotencyStore(ctx)
			if err != nil {
				return nil, openError("Idempotency (the transport's own store)", err)
			}
		} else {
			o.store, err = idempotency.Open(ctx, cfg.Idempotency, log)
			if err != nil {
				return nil, openError("Idempotency", err)
			}
			dedupShared = !strings.HasPrefix(cfg.Idempotency, "memory:")
		}
	}
	ins, _ := o.transport.(transports.Inspector)
	tel := tracing.New(tracing.Config{
		TracerProvider: cfg.TracerProvider, MeterProvider: cfg.MeterProvider, Propagator: cfg.Propagator,
		System: tracing.SystemForScheme(scheme), Process: process, Link: cfg.TraceLinks,
		Logger: log, Inspector: ins,
	})
	handlerCtx, cancelHandler := context.WithCancel(context.Background())
	closing, markClosing := context.WithCancel(context.Background())
	maxPayload, payloadLimit := cfg.MaxPayloadBytes, "Config.MaxPayloadBytes"
	if ml, ok := o.transport.(transports.MessageLimiter); ok {
		if n := ml.MaxMessageBytes(); n > 0 && n-transports.MessageHeadroom < maxPayload {
			maxPayload = max(n-transports.MessageHeadroom, 1)
			payloadLimit = fmt.Sprintf("the broker's limit of %d bytes a message, less %d for metadata", n, transports.MessageHeadroom)
		}
	}
	return &Bus{
		maxPayload: maxPayload, payloadLimit: payloadLimit,
		cfg: cfg, process: process, run: randomName(8), scheme: scheme, transport: o.transport, store: o.store, log: log, tel: tel,
		names: map[string]bool{}, handlerCtx: handlerCtx, cancelHandler: cancelHandler,
		closing: closing, markClosing: markClosing,
		randomProcess: isRandomProcess(cfg.Process), dedupShared: dedupShared, closeBudget: CloseBudget,
	}, nil
}

// openError tells a bad URL (ErrInvalidConfig) from a broker or store out
// of reach (ErrUnavailable).
func openError(what string, err error) error {
	switch {
	case errors.Is(err, transports.ErrInvalidURL), errors.Is(err, transports.ErrUnknownScheme),
		errors.Is(err, idempotency.ErrUnknownScheme), errors.Is(err, transports.ErrInvalidConfig):
		return fmt.Errorf("%w: %s: %w", ErrInvalidConfig, what, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, what, err)
}

// schemeOf names the messaging system of a transport given as a value:
// the scheme of Config.Transport when set, else the driver's package.
func schemeOf(t transports.Transport, scheme string) string {
	if scheme != "" && scheme != "memory" {
		return scheme
	}
	name := fmt.Sprintf("%T", t)
	switch {
	case strings.Contains(name, "redisstream."):
		return "redis"
	case strings.Contains(name, "amqp."):
		return "amqp"
	case strings.Contains(name, "memory."):
		return "memory"
	}
	return "custom"
}

// isRandomProcess reports whether a process name pattern changes at every
// start ({random4}, {random8}, {pid}, or the default): a restart cannot
// take its events back at once.
func isRandomProcess(pattern string) bool {
	return strings.Contains(pattern, "{random4}") || strings.Contains(pattern, "{random8}") || strings.Contains(pattern, "{pid}")
}
