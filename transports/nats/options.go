package nats

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/busline/busline/internal/urlopts"
	"github.com/busline/busline/transports"
)

// Defaults of the options in a nats:// URL.
const (
	DefaultPrefix        = "busline"
	DefaultMaxLen        = 100_000
	DefaultDedupWindow   = 2 * time.Minute
	DefaultMaxAckPending = 20_000
	DefaultReconnectWait = 250 * time.Millisecond
	DefaultTimeout       = 10 * time.Second
	DefaultMaxAckWait    = 15 * time.Second
)

// prefixRE is what a prefix may hold: it is a stream-name piece and a
// subject token.
var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Options are the Busline settings of a NATS JetStream transport. Each has
// a URL query parameter of the same name in snake case.
type Options struct {
	// Prefix starts every name: event streams "{Prefix}_{event}" (dots of
	// the event name as '-'), subjects "{Prefix}.{event}", the dead-letter
	// stream "{Prefix}_dead" and the record bucket "{Prefix}_records".
	// Letters, digits, '_' and '-'. URL: prefix. Default "busline".
	Prefix string
	// MaxLen caps each event stream at this many messages, dropping the
	// oldest (MaxMsgs, DiscardOld). 0 keeps every message. URL: maxlen.
	// Default 100000.
	MaxLen int64
	// MaxLenByEvent overrides MaxLen for single events. URL:
	// maxlen.{event}=N.
	MaxLenByEvent map[string]int64
	// DeadMaxLen caps the dead letters kept per group. 0, the default,
	// keeps every dead letter until it is replayed or purged. URL: dead_maxlen.
	DeadMaxLen int64
	// Storage is where streams keep messages: "file" (the default:
	// durable across server restarts) or "memory". URL: storage.
	Storage jetstream.StorageType
	// Replicas is the number of replicas of every stream and consumer
	// (a clustered JetStream). URL: replicas. Default 1.
	Replicas int
	// DedupWindow is JetStream's duplicate window: a message published
	// again with the same event ID (Nats-Msg-Id) within it is dropped.
	// URL: dedup_window. Default 2m.
	DedupWindow time.Duration
	// MaxAckPending caps the messages a group holds unacknowledged, over
	// all its processes (delayed redeliveries included). URL:
	// max_ack_pending. Default 20000.
	MaxAckPending int
	// Timeout bounds each JetStream API call and publish acknowledgement.
	// URL: timeout. Default 10s.
	Timeout time.Duration
	// MaxAckWait caps the AckWait of group consumers: AckWait is the
	// listener's AckTimeout, at most MaxAckWait. A process keeps what it
	// holds with in-progress acks every AckWait/3 however long it works
	// on it, so the cap only bounds how long a message waits when no
	// process holds it any more: one delivered into a connection that was
	// cut, or held by a process killed and not restarted under its name.
	// URL: ack_wait_max. Default 15s.
	MaxAckWait time.Duration
	// NoScheduleMover keeps this transport from moving due scheduled
	// events (it still schedules and cancels them): for processes that
	// only fire, when others run movers. At least one transport with a
	// mover must run for scheduled events to be delivered. URL:
	// no_schedule_mover=true.
	NoScheduleMover bool
	// KeepLimits leaves the limits of existing streams as they are
	// (transports.OpenOptions.KeepLimits: a tool); streams it makes get
	// the options'.
	KeepLimits bool
	// Process is the process name the mover writes in its lease, so that
	// a process restarted under the same name after a crash takes the
	// lease of its dead incarnation over at once instead of after the
	// lease's time to live. Opening a URL through the bus sets it
	// (transports.OpenOptions.Process); not a URL option.
	Process string
}

// DefaultOptions returns the options a nats:// URL without Busline
// parameters gets.
func DefaultOptions() Options {
	return Options{
		Prefix:        DefaultPrefix,
		MaxLen:        DefaultMaxLen,
		Storage:       jetstream.FileStorage,
		Replicas:      1,
		DedupWindow:   DefaultDedupWindow,
		MaxAckPending: DefaultMaxAckPending,
		Timeout:       DefaultTimeout,
		MaxAckWait:    DefaultMaxAckWait,
	}
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.Prefix == "" {
		o.Prefix = d.Prefix
	}
	if o.Replicas <= 0 {
		o.Replicas = d.Replicas
	}
	if o.DedupWindow <= 0 {
		o.DedupWindow = d.DedupWindow
	}
	if o.MaxAckPending == 0 {
		o.MaxAckPending = d.MaxAckPending
	}
	if o.Timeout <= 0 {
		o.Timeout = d.Timeout
	}
	if o.MaxAckWait <= 0 {
		o.MaxAckWait = d.MaxAckWait
	}
	return o
}

func (o Options) validate() error {
	if !prefixRE.MatchString(o.Prefix) {
		return fmt.Errorf("%w: nats option prefix=%q: want 1-64 letters, digits, '_' or '-'", transports.ErrInvalidURL, o.Prefix)
	}
	return nil
}

// maxLen is the cap of one event stream.
func (o Options) maxLen(event string) int64 {
	if n, ok := o.MaxLenByEvent[event]; ok {
		return n
	}
	return o.MaxLen
}

// config is a parsed URL: the Busline options, the servers and the
// nats.go connection options.
type config struct {
	opts    Options
	servers []string
	conn    []natsgo.Option
}

// parseURL splits a nats:// or tls:// URL into Busline options and
// nats.go connection options. Credentials come from the URL's user info
// (user:password, or a token alone) or from files (creds=, nkey=), never
// from other query parameters, so that transports.Redact hides them all.
func parseURL(u *url.URL) (config, error) {
	c := config{opts: DefaultOptions()}
	q := urlopts.Query{Transport: "nats", Values: u.Query()}
	if v, ok := q.Take("prefix"); ok {
		c.opts.Prefix = v
	}
	useTLS := u.Scheme == "tls"
	var tlsInsecure bool
	var caFile, certFile, keyFile, credsFile, nkeyFile, name string
	if err := urlopts.All(
		func() error { return q.Int("maxlen", 0, urlopts.Into(&c.opts.MaxLen)) },
		func() error { return q.Int("dead_maxlen", 0, urlopts.Into(&c.opts.DeadMaxLen)) },
		func() error { return q.Int("replicas", 1, urlopts.Into(&c.opts.Replicas)) },
		func() error { return q.Int("max_ack_pending", -1, urlopts.Into(&c.opts.MaxAckPending)) },
		func() error {
			return q.Duration("dedup_window", urlopts.Positive, urlopts.IntoDuration(&c.opts.DedupWindow))
		},
		func() error { return q.Duration("timeout", urlopts.Positive, urlopts.IntoDuration(&c.opts.Timeout)) },
		func() error {
			return q.Duration("ack_wait_max", urlopts.Positive, urlopts.IntoDuration(&c.opts.MaxAckWait))
		},
		func() error { return q.Bool("tls", func(b bool) { useTLS = useTLS || b }) },
		func() error { return q.Bool("tls_insecure", func(b bool) { tlsInsecure = b }) },
		func() error { return q.Bool("no_schedule_mover", func(b bool) { c.opts.NoScheduleMover = b }) },
	); err != nil {
		return config{}, err
	}
	if v, ok := q.Take("storage"); ok {
		switch v {
		case "file":
			c.opts.Storage = jetstream.FileStorage
		case "memory":
			c.opts.Storage = jetstream.MemoryStorage
		default:
			return config{}, q.Bad("storage", v, fmt.Errorf("want file or memory"))
		}
	}
	for key, dst := range map[string]*string{"tls_ca": &caFile, "tls_cert": &certFile, "tls_key": &keyFile, "creds": &credsFile, "nkey": &nkeyFile, "name": &name} {
		if v, ok := q.Take(key); ok {
			*dst = v
		}
	}
	if err := q.MaxLenByEvent(&c.opts.MaxLenByEvent); err != nil {
		return config{}, err
	}
	for key := range q.Values {
		return config{}, fmt.Errorf("%w: unknown nats option %q", transports.ErrInvalidURL, key)
	}
	c.opts = c.opts.withDefaults()
	if err := c.opts.validate(); err != nil {
		return config{}, err
	}

	if u.Host == "" {
		return config{}, fmt.Errorf("%w: %s names no server", transports.ErrInvalidURL, transports.Redact(u))
	}
	scheme := "nats"
	if useTLS {
		scheme = "tls"
	}
	for _, h := range strings.Split(u.Host, ",") {
		if !strings.Contains(h, ":") {
			h += ":4222"
		}
		c.servers = append(c.servers, scheme+"://"+h)
	}
	if u.User != nil {
		user := u.User.Username()
		if pw, has := u.User.Password(); has {
			c.conn = append(c.conn, natsgo.UserInfo(user, pw))
		} else {
			c.conn = append(c.conn, natsgo.Token(user))
		}
	}
	if credsFile != "" {
		if _, err := os.Stat(credsFile); err != nil {
			return config{}, fmt.Errorf("%w: nats option creds: %w", transports.ErrInvalidURL, err)
		}
		c.conn = append(c.conn, natsgo.UserCredentials(credsFile))
	}
	if nkeyFile != "" {
		opt, err := natsgo.NkeyOptionFromSeed(nkeyFile)
		if err != nil {
			return config{}, fmt.Errorf("%w: nats option nkey: %w", transports.ErrInvalidURL, err)
		}
		c.conn = append(c.conn, opt)
	}
	if useTLS || caFile != "" || certFile != "" || tlsInsecure {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: tlsInsecure} //nolint:gosec // asked for by tls_insecure=true
		if caFile != "" {
			pem, err := os.ReadFile(caFile)
			if err != nil {
				return config{}, fmt.Errorf("%w: nats option tls_ca: %w", transports.ErrInvalidURL, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return config{}, fmt.Errorf("%w: nats option tls_ca: no certificate in %s", transports.ErrInvalidURL, caFile)
			}
			tc.RootCAs = pool
		}
		if (certFile == "") != (keyFile == "") {
			return config{}, fmt.Errorf("%w: nats options tls_cert and tls_key go together", transports.ErrInvalidURL)
		}
		if certFile != "" {
			cert, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				return config{}, fmt.Errorf("%w: nats options tls_cert/tls_key: %w", transports.ErrInvalidURL, err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		c.conn = append(c.conn, natsgo.Secure(tc))
	}
	if name != "" {
		c.conn = append(c.conn, natsgo.Name(name))
	}
	return c, nil
}

// parseURLString parses a raw nats:// URL with parseURL.
func parseURLString(raw string) (config, error) {
	u, err := transports.ParseURL(raw)
	if err != nil {
		return config{}, err
	}
	return parseURL(u)
}

// ConnectOptions returns the server list and the nats.go connection
// options (credentials, TLS) of a nats:// or tls:// URL, for tools that
// connect beside a transport.
func ConnectOptions(u *url.URL) (servers string, opts []natsgo.Option, err error) {
	c, err := parseURL(u)
	if err != nil {
		return "", nil, err
	}
	return strings.Join(c.servers, ","), c.conn, nil
}
