package bus

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"gopkg.in/yaml.v3"

	"github.com/busline/busline/middleware"
	"github.com/busline/busline/transports"
)

// Config composes a bus. Only Service is required.
type Config struct {
	// Service names this service; consumer groups are "{Service}-{listener}". Required.
	Service string
	// Process names this process within its groups. It may use the
	// placeholders {hostname}, {pid}, {random4} and {random8}. Default
	// "{random4}": a restarted process then does not reclaim its own
	// unacknowledged events at once but waits for AckTimeout; give a stable
	// name (for example "{hostname}") to resume at once.
	Process string
	// Transport is the broker URL: memory://, memory://NAME, redis://,
	// rediss://, amqp://, amqps://, nats://, tls:// (NATS over TLS).
	// Default "memory://".
	Transport string
	// Idempotency is the URL of the dedup store. Default: with a redis://
	// or rediss:// transport, the same Redis (dedup across processes);
	// otherwise "memory://" (dedup within this process only).
	Idempotency string
	// Listener holds the defaults for every listener.
	Listener ListenerOptions
	// Logger receives the bus's logs. Default slog.Default().
	Logger *slog.Logger
	// Codec encodes payloads. Default JSONCodec.
	Codec Codec
	// MaxPayloadBytes is the largest encoded payload Fire accepts. Default
	// DefaultMaxPayloadBytes. On a transport whose broker limits a message
	// with its headers (transports.MessageLimiter: NATS's max_payload, 1 MiB
	// by default), the bus accepts at most that limit less
	// transports.MessageHeadroom, when it is lower.
	MaxPayloadBytes int
	// ShutdownTimeout bounds how long Close waits for in-flight handlers.
	// Default 30s. Then their contexts are cancelled and Close waits at
	// most one more second for them to return (see Bus.Close). Events
	// whose handler has not finished are not acknowledged and are
	// delivered again.
	ShutdownTimeout time.Duration
	// TracerProvider makes the PRODUCER span of Fire and the CONSUMER span
	// of every delivery attempt. Default otel.GetTracerProvider(), a no-op
	// until the program installs an SDK.
	TracerProvider trace.TracerProvider
	// MeterProvider makes the bus's metrics (see docs/observability.md).
	// Default otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Propagator carries the trace context (W3C traceparent/tracestate,
	// baggage) in event metadata. Default otel.GetTextMapPropagator(), which
	// is a no-op until the program sets one: set it (or this field) to
	// propagation.NewCompositeTextMapPropagator(propagation.TraceContext{},
	// propagation.Baggage{}) for traces to cross the broker.
	Propagator propagation.TextMapPropagator
	// TraceLinks starts each listener's span as the root of a new trace
	// with a link to the span of Fire, instead of as its child: for events
	// that fan out to many listeners whose work is best seen as traces of
	// their own.
	TraceLinks bool
	// ValidatePayloads checks payloads against their event's JSON Schema
	// (docs/schemas.md): Fire refuses a payload that does not match
	// (ErrInvalidPayload, nothing published), and a listener dead-letters
	// an incoming payload that does not match its schema, with the
	// mismatch as the reason, before the handler runs. Off by default;
	// off, it costs nothing. Needs the JSON codec.
	ValidatePayloads bool
}

// Since is where a new consumer group starts reading; the zero value reads
// only events fired after the group was created.
type Since = transports.Since

// Beginning starts a new group at the oldest event the transport retains.
var Beginning = transports.SinceBeginning

// SinceTime starts a new group at the first event fired at or after t.
func SinceTime(t time.Time) Since { return transports.SinceTime(t) }

// RetryPolicy configures in-process retries and the redelivery delay.
type RetryPolicy = middleware.RetryPolicy

// ListenerOptions configure a listener. Zero fields take the defaults.
type ListenerOptions struct {
	// AckTimeout is how long an event may stay unacknowledged by a process
	// that stopped before another process of the group takes it. Default 60s.
	AckTimeout time.Duration
	// Concurrency is the number of handlers in flight per listener per
	// process. Default 16. With 1 each process handles its events one at a
	// time in the order they were fired — until one fails: a failed event
	// is redelivered after its backoff while the events after it go on (no
	// head-of-line blocking), as on Redis Streams.
	Concurrency int
	// MaxDeliveries is the number of deliveries after which a failing event
	// is dead-lettered. Default 10.
	MaxDeliveries int
	// Retry is the in-process retry and redelivery backoff.
	Retry RetryPolicy
	// Since is where the group starts when it is first created.
	Since Since
	// Timeout is the deadline of each handler call. Default none.
	Timeout time.Duration
	// DisableIdempotency turns deduplication by event ID off for the listener.
	DisableIdempotency bool
	// Retention is how long the dedup store remembers a handled event. Default 7 days.
	Retention time.Duration
}

// ListenOption changes the options of one listener.
type ListenOption func(*ListenerOptions)

// WithAckTimeout sets ListenerOptions.AckTimeout.
func WithAckTimeout(d time.Duration) ListenOption {
	return func(o *ListenerOptions) { o.AckTimeout = d }
}

// WithConcurrency sets ListenerOptions.Concurrency.
func WithConcurrency(n int) ListenOption { return func(o *ListenerOptions) { o.Concurrency = n } }

// WithMaxDeliveries sets ListenerOptions.MaxDeliveries.
func WithMaxDeliveries(n int) ListenOption { return func(o *ListenerOptions) { o.MaxDeliveries = n } }

// WithRetry sets ListenerOptions.Retry. Its unset fields (see
// RetryPolicy.Or) come from Config.Listener.Retry,
// then from the defaults; to get a default back that the service
// overrode, set it explicitly (Tries 3, Jitter 0.2, ...).
func WithRetry(p RetryPolicy) ListenOption { return func(o *ListenerOptions) { o.Retry = p } }

// WithSince sets ListenerOptions.Since.
func WithSince(s Since) ListenOption { return func(o *ListenerOptions) { o.Since = s } }

// WithTimeout sets ListenerOptions.Timeout.
func WithTimeout(d time.Duration) ListenOption { return func(o *ListenerOptions) { o.Timeout = d } }

// WithoutIdempotency turns deduplication off for the listener.
func WithoutIdempotency() ListenOption {
	return func(o *ListenerOptions) { o.DisableIdempotency = true }
}

// WithRetention sets ListenerOptions.Retention.
func WithRetention(d time.Duration) ListenOption {
	return func(o *ListenerOptions) { o.Retention = d }
}

// withDefaults fills zero fields from base, then from the built-in defaults.
func (o ListenerOptions) withDefaults(base ListenerOptions) ListenerOptions {
	pick := func(v, b, d time.Duration) time.Duration {
		if v != 0 {
			return v
		}
		if b != 0 {
			return b
		}
		return d
	}
	o.AckTimeout = pick(o.AckTimeout, base.AckTimeout, 60*time.Second)
	o.Timeout = pick(o.Timeout, base.Timeout, 0)
	o.Retention = pick(o.Retention, base.Retention, 7*24*time.Hour)
	if o.Concurrency == 0 {
		o.Concurrency = cmp(base.Concurrency, 16)
	}
	if o.MaxDeliveries == 0 {
		o.MaxDeliveries = cmp(base.MaxDeliveries, 10)
	}
	o.Retry = o.Retry.Or(base.Retry).WithDefaults()
	if o.Since.IsNew() {
		o.Since = base.Since
	}
	o.DisableIdempotency = o.DisableIdempotency || base.DisableIdempotency
	return o
}

func cmp(v, d int) int {
	if v != 0 {
		return v
	}
	return d
}

func (o ListenerOptions) validate() error {
	for _, d := range [...]struct {
		name string
		v    time.Duration
	}{{"AckTimeout", o.AckTimeout}, {"Timeout", o.Timeout}, {"Retention", o.Retention}} {
		if d.v < 0 {
			return fmt.Errorf("%w: %s is %s; durations must not be negative", ErrInvalidConfig, d.name, d.v)
		}
	}
	switch {
	case o.Concurrency < 0:
		return fmt.Errorf("%w: Concurrency must be at least 1", ErrInvalidConfig)
	case o.MaxDeliveries < 0:
		return fmt.Errorf("%w: MaxDeliveries must be at least 1", ErrInvalidConfig)
	}
	return validateRetry(o.Retry)
}

// validateRetry refuses a retry policy value that can only be a mistake;
// zero fields are unset (they take the service's or the default).
func validateRetry(p RetryPolicy) error {
	if problems := retryProblems(p, retryGoNames); len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, strings.Join(problems, "; "))
	}
	return nil
}

// retryGoNames and retryFileNames name a RetryPolicy's fields in Go and
// in a configuration file.
var (
	retryGoNames = map[string]string{"tries": "Retry.Tries", "initial": "Retry.InitialInterval",
		"max": "Retry.MaxInterval", "multiplier": "Retry.Multiplier", "jitter": "Retry.Jitter"}
	retryFileNames = map[string]string{"tries": "listener.retry.tries", "initial": "listener.retry.initial_interval",
		"max": "listener.retry.max_interval", "multiplier": "listener.retry.multiplier", "jitter": "listener.retry.jitter"}
)

// retryProblems says what is wrong with p, every field, in names' words.
func retryProblems(p RetryPolicy, names map[string]string) []string {
	var out []string
	if p.Tries < 0 {
		out = append(out, fmt.Sprintf("%s is %d; at least 1 (1: no in-process retry), or 0 for the default", names["tries"], p.Tries))
	}
	if p.InitialInterval < 0 {
		out = append(out, fmt.Sprintf("%s is %s; durations must not be negative", names["initial"], p.InitialInterval))
	}
	if p.MaxInterval < 0 {
		out = append(out, fmt.Sprintf("%s is %s; durations must not be negative", names["max"], p.MaxInterval))
	}
	if p.MaxInterval > 0 && p.InitialInterval > p.MaxInterval {
		out = append(out, fmt.Sprintf("%s %s is above %s %s", names["initial"], p.InitialInterval, names["max"], p.MaxInterval))
	}
	if p.Multiplier < 0 || (p.Multiplier > 0 && p.Multiplier < 1) {
		out = append(out, fmt.Sprintf("%s is %g; at least 1 (1: the same wait each time), or 0 for the default", names["multiplier"], p.Multiplier))
	}
	if p.Jitter >= 1 {
		out = append(out, fmt.Sprintf("%s is %g; a fraction below 1 (negative: no jitter), or 0 for the default", names["jitter"], p.Jitter))
	}
	return out
}

// DefaultMaxPayloadBytes is Config.MaxPayloadBytes when it is 0: 1 MiB.
const DefaultMaxPayloadBytes = 1 << 20

func (c Config) withDefaults() Config {
	if c.Process == "" {
		c.Process = "{random4}"
	}
	if c.Transport == "" {
		c.Transport = "memory://"
	}
	if c.Idempotency == "" {
		c.Idempotency = "memory://"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Codec == nil {
		c.Codec = JSONCodec{}
	}
	if c.MaxPayloadBytes == 0 {
		c.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	return c
}

// Validate reports what is wrong with c, with defaults applied.
func (c Config) Validate() error {
	raw := c.Listener // before the defaults replace what is unset
	c = c.withDefaults()
	switch {
	case c.Service == "":
		return fmt.Errorf("%w: Service is required (it names the consumer groups \"{service}-{listener}\"); set Config.Service or BUSLINE_SERVICE", ErrInvalidConfig)
	case c.MaxPayloadBytes < 0:
		return fmt.Errorf("%w: MaxPayloadBytes must be positive", ErrInvalidConfig)
	case c.ShutdownTimeout < 0:
		return fmt.Errorf("%w: ShutdownTimeout must not be negative", ErrInvalidConfig)
	case c.ValidatePayloads && c.Codec.ContentType() != "application/json":
		return fmt.Errorf("%w: ValidatePayloads checks JSON payloads; the codec writes %s", ErrInvalidConfig, c.Codec.ContentType())
	}
	if err := ValidateName("service", c.Service); err != nil {
		// "bus: invalid configuration: Service: service name ...", as the
		// other fields' errors read (not "Service: bus: invalid ...").
		return fmt.Errorf("%w: Service: %s", ErrInvalidConfig, strings.TrimPrefix(err.Error(), ErrInvalidConfig.Error()+": "))
	}
	if _, err := ExpandProcessName(c.Process); err != nil {
		return err
	}
	return raw.validate()
}

var placeholder = regexp.MustCompile(`\{[^}]*\}`)

// ExpandProcessName replaces the placeholders {hostname}, {pid}, {random4}
// and {random8} in a process name. Unknown placeholders are an error.
func ExpandProcessName(pattern string) (string, error) {
	var bad string
	out := placeholder.ReplaceAllStringFunc(pattern, func(p string) string {
		switch p {
		case "{hostname}":
			h, err := os.Hostname()
			if err != nil || h == "" {
				h = "localhost"
			}
			return h
		case "{pid}":
			return strconv.Itoa(os.Getpid())
		case "{random4}":
			return randomName(4)
		case "{random8}":
			return randomName(8)
		}
		bad = p
		return p
	})
	if bad != "" {
		return "", fmt.Errorf("%w: unknown placeholder %s in process name %q (known: {hostname} {pid} {random4} {random8})", ErrInvalidConfig, bad, pattern)
	}
	if err := ValidateName("process", out); err != nil {
		return "", err
	}
	return out, nil
}

func randomName(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// fileConfig is the YAML shape of a configuration file.
type fileConfig struct {
	Service         string        `yaml:"service"`
	Process         string        `yaml:"process"`
	Transport       string        `yaml:"transport"`
	Idempotency     string        `yaml:"idempotency"`
	MaxPayloadBytes int           `yaml:"max_payload_bytes"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	Listener        struct {
		AckTimeout         time.Duration `yaml:"ack_timeout"`
		Concurrency        int           `yaml:"concurrency"`
		MaxDeliveries      int           `yaml:"max_deliveries"`
		Timeout            time.Duration `yaml:"timeout"`
		Since              sinceField    `yaml:"since"`
		DisableIdempotency bool          `yaml:"disable_idempotency"`
		Retention          time.Duration `yaml:"retention"`
		Retry              struct {
			Tries           int           `yaml:"tries"`
			InitialInterval time.Duration `yaml:"initial_interval"`
			MaxInterval     time.Duration `yaml:"max_interval"`
			Multiplier      float64       `yaml:"multiplier"`
			Jitter          float64       `yaml:"jitter"`
		} `yaml:"retry"`
	} `yaml:"listener"`
	ValidatePayloads bool `yaml:"validate_payloads"`
}

// LoadConfig reads a YAML configuration file; the environment variables of
// ConfigFromEnv override what the file says. Unknown keys are an error.
func LoadConfig(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	defer f.Close()
	var fc fileConfig
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	err = dec.Decode(&fc)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	// The retry values that can only be mistakes are reported with the
	// file's other errors, in its words.
	retry := RetryPolicy{
		Tries: fc.Listener.Retry.Tries, InitialInterval: fc.Listener.Retry.InitialInterval,
		MaxInterval: fc.Listener.Retry.MaxInterval, Multiplier: fc.Listener.Retry.Multiplier,
		Jitter: fc.Listener.Retry.Jitter,
	}
	if err != nil || len(retryProblems(retry, retryFileNames)) > 0 {
		return Config{}, yamlError(path, err, retryProblems(retry, retryFileNames)...)
	}
	cfg := Config{
		Service: fc.Service, Process: fc.Process, Transport: fc.Transport, Idempotency: fc.Idempotency,
		MaxPayloadBytes: fc.MaxPayloadBytes, ShutdownTimeout: fc.ShutdownTimeout,
		ValidatePayloads: fc.ValidatePayloads,
		Listener: ListenerOptions{
			AckTimeout: fc.Listener.AckTimeout, Concurrency: fc.Listener.Concurrency,
			MaxDeliveries: fc.Listener.MaxDeliveries, Timeout: fc.Listener.Timeout, Since: fc.Listener.Since.Since,
			DisableIdempotency: fc.Listener.DisableIdempotency, Retention: fc.Listener.Retention,
			Retry: retry,
		},
	}
	applyEnv(&cfg)
	return cfg, nil
}

// sinceField is the listener's since key of a configuration file, parsed
// as it is decoded so that its error names the line.
type sinceField struct{ Since }

// UnmarshalYAML implements yaml.Unmarshaler.
func (f *sinceField) UnmarshalYAML(v *yaml.Node) error {
	// A *yaml.TypeError lets the decoder go on and report the file's
	// other errors with this one.
	var s string
	if v.Kind != yaml.ScalarNode || v.Decode(&s) != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: since is not %s", v.Line, sinceWords)}}
	}
	since, err := ParseSince(s)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: since %q is not %s", v.Line, redactValue(s), sinceWords)}}
	}
	f.Since = since
	return nil
}

// sinceWords says what a since value may be.
const sinceWords = `"new", "beginning" or an RFC 3339 time`

// ParseSince parses "", "new", "beginning" or an RFC 3339 time.
func ParseSince(s string) (Since, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "new":
		return Since{}, nil
	case "beginning":
		return Beginning, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return Since{}, fmt.Errorf("%w: since %q is not %s", ErrInvalidConfig, s, sinceWords)
	}
	return SinceTime(t), nil
}

// ConfigFromEnv builds a Config from BUSLINE_SERVICE, BUSLINE_PROCESS,
// BUSLINE_TRANSPORT and BUSLINE_IDEMPOTENCY; when BUSLINE_CONFIG names a
// YAML file, it is read first and the variables override it.
func ConfigFromEnv() (Config, error) {
	if path := os.Getenv("BUSLINE_CONFIG"); path != "" {
		return LoadConfig(path)
	}
	var cfg Config
	applyEnv(&cfg)
	return cfg, nil
}

func applyEnv(cfg *Config) {
	set := func(dst *string, name string) {
		if v, ok := os.LookupEnv(name); ok && v != "" {
			*dst = v
		}
	}
	set(&cfg.Service, "BUSLINE_SERVICE")
	set(&cfg.Process, "BUSLINE_PROCESS")
	set(&cfg.Transport, "BUSLINE_TRANSPORT")
	set(&cfg.Idempotency, "BUSLINE_IDEMPOTENCY")
}
