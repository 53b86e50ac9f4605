package transports

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/busline/busline/internal/registry"
)

// Opener opens a transport for a parsed URL. Drivers register one per scheme.
type Opener func(ctx context.Context, u *url.URL, opts OpenOptions) (Transport, error)

// OpenOptions is what the bus tells a driver when it opens it.
type OpenOptions struct {
	// Service is the name of the service opening the transport.
	Service string
	// Process is the process name of the bus opening the transport
	// (Config.Process, expanded); empty for tools. A driver may use it to
	// recognise its own earlier incarnation after a crash (NATS: the
	// lease of the mover of scheduled events).
	Process string
	// Logger receives the driver's logs. Never nil when set by the bus.
	Logger *slog.Logger
	// NoScheduleMover says the caller only fires or inspects, for a
	// short time (a command-line tool): a driver that moves due scheduled
	// events into their streams (Redis, NATS) leaves that to the services'
	// processes, as with the URL option no_schedule_mover=true. Drivers
	// without a mover ignore it.
	NoScheduleMover bool
	// KeepLimits says the caller is a tool that must leave the limits of
	// the streams as the services' URLs set them: a driver neither trims
	// a stream as it appends (Redis MAXLEN) nor changes an existing
	// stream's limits (NATS), whatever its own URL says. A stream it has
	// to make gets the URL's limits.
	KeepLimits bool
}

var drivers = registry.New[Opener]("transports", map[string]string{
	"memory": "github.com/busline/busline/transports/memory",
	"redis":  "github.com/busline/busline/transports/redisstream",
	"rediss": "github.com/busline/busline/transports/redisstream",
	"amqp":   "github.com/busline/busline/transports/amqp",
	"amqps":  "github.com/busline/busline/transports/amqp",
	"nats":   "github.com/busline/busline/transports/nats",
	"tls":    "github.com/busline/busline/transports/nats",
})

// Register makes a driver available under scheme. It panics if scheme is
// registered twice or opener is nil, like database/sql.Register.
func Register(scheme string, opener Opener) {
	if opener == nil {
		panic("transports: Register opener is nil")
	}
	drivers.Register(scheme, opener)
}

// Schemes returns the registered schemes, sorted.
func Schemes() []string { return drivers.Names() }

// Open parses rawURL and opens the transport registered for its scheme.
// Errors never contain the URL's secrets (see RedactURL).
func Open(ctx context.Context, rawURL string, opts OpenOptions) (Transport, error) {
	u, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	opener, ok := drivers.Lookup(u.Scheme)
	if !ok && storeSchemes[strings.ToLower(u.Scheme)] {
		return nil, fmt.Errorf("%w: %s is a dedup store's URL (Config.Idempotency, BUSLINE_IDEMPOTENCY), not a transport's (want memory://, redis://, amqp://, nats://)", ErrUnknownScheme, Redact(u))
	}
	if !ok {
		return nil, drivers.Unknown(ErrUnknownScheme, u.Scheme, Redact(u), " (or github.com/busline/busline/transports/all)")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	t, err := opener(ctx, u, opts)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", Redact(u), RedactError(err, rawURL))
	}
	return t, nil
}

// ParseURL parses a transport or store URL. The error never repeats the password.
func ParseURL(rawURL string) (*url.URL, error) {
	if strings.TrimSpace(rawURL) == "" {
		return nil, fmt.Errorf("%w: empty URL", ErrInvalidURL)
	}
	if isKeywordValue(rawURL) {
		return nil, fmt.Errorf("%w: %q is a keyword/value connection string, not a URL (want postgres://user:password@host:5432/db, redis://HOST:PORT, ...)", ErrInvalidURL, redactKeywordValue(rawURL))
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error repeats the input, which may hold a password; so do
		// its port and escape errors, the part they quote.
		var ue *url.Error
		var ee url.EscapeError
		msg := err.Error()
		if errors.As(err, &ue) {
			msg = ue.Err.Error()
		}
		switch {
		case errors.As(err, &ee):
			msg = "invalid URL escape (a % starts a %XX escape: write a literal % as %25)"
		case strings.HasPrefix(msg, "invalid port"):
			msg = fmt.Sprintf("%s: invalid port after the host: percent-encode a ':', '/', '?', '#' or '@' in the user name or password (%%3A, %%2F, %%3F, %%23, %%40)", redactUnparsable(rawURL))
		}
		if !strings.Contains(rawURL, "://") {
			msg += " (want memory://, redis://, amqp://, ...)" // "127.0.0.1:6379" lands here
		}
		return nil, fmt.Errorf("%w: %s", ErrInvalidURL, msg)
	}
	if u.Opaque != "" && strings.Trim(u.Opaque, "0123456789/") == "" {
		// "localhost:6379", "redis:6379", "localhost:6379/0": a host and
		// port without "//".
		return nil, fmt.Errorf("%w: %q is a host and port, not a URL (want redis://HOST:PORT, amqp://..., ...)", ErrInvalidURL, u.Scheme+":"+u.Opaque)
	}
	if strings.Contains(u.Opaque, "@") {
		return nil, fmt.Errorf("%w: %s has a user and password without \"//\" (want %s://user:password@host)", ErrInvalidURL, redactOpaque(u), wantScheme(u.Scheme))
	}
	if u.Opaque != "" && !(strings.EqualFold(u.Scheme, "memory") && !strings.ContainsAny(u.Opaque, ":@/")) {
		// "guest:guest": no "//", and the "scheme" may be a user name.
		// ("memory:NAME" names a broker, as "memory://NAME" does.)
		return nil, fmt.Errorf("%w: %s is not a URL: no \"//\" after its scheme (want scheme://[user:password@]host[:port]/..., such as redis://HOST:PORT or memory://NAME)", ErrInvalidURL, redactOpaque(u))
	}
	if u.Host == "" && pathHoldsAt(u) {
		return nil, fmt.Errorf("%w: %s has its user and password in the path (want scheme://user:password@host)", ErrInvalidURL, Redact(u))
	}
	if u.Host != "" && userinfoAfterHost(u) {
		return nil, fmt.Errorf("%w: %s has an '@' after its host: percent-encode a '/', '?' or '#' in the password (%%2F, %%3F, %%23), or an '@' in the path (%%40)", ErrInvalidURL, Redact(u))
	}
	if u.Scheme == "" {
		// Redact shows it as typed, its secrets masked.
		return nil, fmt.Errorf("%w: %q has no scheme (want memory://, redis://, amqp://, ...)", ErrInvalidURL, Redact(u))
	}
	if strings.ContainsAny(rawURL, " \t\n") {
		return nil, fmt.Errorf("%w: %s has a space: percent-encode it (%%20)", ErrInvalidURL, Redact(u))
	}
	return u, nil
}

// storeSchemes are the schemes of dedup stores that are no transports.
var storeSchemes = map[string]bool{"postgres": true, "postgresql": true}

// knownScheme reports whether s is a scheme Busline reads (a transport's
// or a store's), and so no user name.
func knownScheme(s string) bool {
	s = strings.ToLower(s)
	_, transport := drivers.Lookup(s)
	return transport || storeSchemes[s] || s == "memory" || s == "redis" || s == "rediss" || s == "amqp" || s == "amqps" || s == "nats" || s == "tls"
}

// redactOpaque shows a URL without "//" ("redis:u:pw@h", "guest:guest"):
// its scheme when Busline knows it, else nothing, since "guest:guest"
// parses with the user name as its scheme.
func redactOpaque(u *url.URL) string {
	if knownScheme(u.Scheme) {
		return u.Scheme + ":" + Mask
	}
	return Mask
}

// wantScheme is the scheme to suggest for a URL whose scheme may be a user name.
func wantScheme(s string) string {
	if knownScheme(s) {
		return s
	}
	return "scheme"
}
