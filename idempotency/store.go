package idempotency

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/busline/busline/internal/registry"
	"github.com/busline/busline/transports"
)

// State is what Begin found for a key.
type State int

const (
	// Fresh: the caller holds a new lease and must Commit or Abort it.
	Fresh State = iota + 1
	// Done: the key was committed; the event must not be processed again.
	Done
	// Held: another holder has a live lease on the key.
	Held
)

func (s State) String() string {
	switch s {
	case Fresh:
		return "fresh"
	case Done:
		return "done"
	case Held:
		return "held"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Lease is a claim on a key returned by Begin with state Fresh.
type Lease struct {
	Key   string
	Token string
	// Expires is when the lease may be taken over by another holder.
	Expires time.Time
}

// Store records which events were processed. Implementations must be safe
// for concurrent use by many goroutines and, for shared stores, processes.
type Store interface {
	// Begin claims key for leaseFor. It returns Fresh with a lease when the
	// key is unknown or its previous lease expired; Done when it was
	// committed; Held (with the holder's expiry in the lease) when another
	// live lease exists.
	Begin(ctx context.Context, key string, leaseFor time.Duration) (State, Lease, error)
	// Commit marks the leased key done for retention. It fails with
	// ErrLeaseLost when the lease expired and another holder took the key,
	// or when the key is already done; a lease that expired without being
	// taken over still commits.
	Commit(ctx context.Context, lease Lease, retention time.Duration) error
	// Abort releases the lease so that a retry can claim the key at once.
	// Aborting a lease that was lost is not an error.
	Abort(ctx context.Context, lease Lease) error
	// Close releases the store's connections.
	Close() error
}

// LeaseExtender is implemented by stores whose leases expire: the
// middleware extends the lease while the handler runs, so that a slow
// handler's event is not taken over (and run in parallel) by a duplicate.
type LeaseExtender interface {
	// Extend moves the lease's expiry to now+d if the caller still holds
	// it, and fails with ErrLeaseLost otherwise.
	Extend(ctx context.Context, lease Lease, d time.Duration) error
}

// DoneReader is implemented by stores that can tell whether a key is
// committed by reading alone; IsDone uses it rather than a claim it gives
// back at once.
type DoneReader interface {
	// KeyDone reports whether key is committed (done and not expired).
	KeyDone(ctx context.Context, key string) (bool, error)
}

// DeferredCommitter is implemented by stores that can apply a commit after
// the middleware returned, yet before the event is acknowledged: the
// transport sends its acknowledgements through the store, which sends each
// one only once the commits queued before it are applied. The handler's
// slot is then free one round trip sooner, and a crash before the commit
// is applied is a crash before the acknowledgement, as before.
type DeferredCommitter interface {
	// CommitDeferred queues the commit of lease for retention and reports
	// true, or reports false (and queues nothing) when the store cannot
	// order it before the acknowledgement: the caller then calls Commit.
	// done receives what Commit would have returned (nil or an error
	// wrapping ErrLeaseLost) once the commit is applied; it is called on
	// the store's goroutine and must not block.
	CommitDeferred(lease Lease, retention time.Duration, done func(error)) bool
}

// AheadClaimer is implemented by stores that can claim an event's key
// before the middleware asks for it: in the transport's own read of the
// event, in the same round trip (the Redis store with the Redis
// transport). The middleware announces the group, holder and lease its
// Begin calls use; a Begin for a key claimed ahead returns Fresh at once,
// and a transport releases a claim taken ahead whose event it settles
// without a Begin (a poison entry, a give-back at a stop).
type AheadClaimer interface {
	// ExpectBegins says that Begin is called with the keys Key(group,
	// event ID), for leases of lease, taken by holder. The last call for a
	// group wins.
	ExpectBegins(group string, holder Holder, lease time.Duration)
}

// Errors a Store returns; match them with errors.Is.
var (
	// ErrLeaseLost: the lease expired and another holder claimed the key.
	ErrLeaseLost = errors.New("idempotency: lease lost")
	// ErrHeld: another consumer is processing the event now.
	// It wraps transports.ErrNotAttempted, so the dead-letter middleware
	// never counts it as a failure.
	ErrHeld = fmt.Errorf("idempotency: event is being processed by another consumer (%w)", transports.ErrNotAttempted)
	// ErrUnknownScheme: no imported store registered the URL's scheme.
	ErrUnknownScheme = errors.New("idempotency: unknown store URL scheme")
)

// DefaultRetention is how long a committed key is remembered.
const DefaultRetention = 7 * 24 * time.Hour

// Opener opens a store for a parsed URL.
type Opener func(ctx context.Context, u *url.URL, logger *slog.Logger) (Store, error)

var stores = registry.New[Opener]("idempotency", map[string]string{
	"redis":      "github.com/busline/busline/idempotency/redisstore",
	"rediss":     "github.com/busline/busline/idempotency/redisstore",
	"postgres":   "github.com/busline/busline/idempotency/pgstore",
	"postgresql": "github.com/busline/busline/idempotency/pgstore",
})

// Register makes a store available under scheme; it panics on a duplicate.
func Register(scheme string, opener Opener) {
	if opener == nil {
		panic("idempotency: Register opener is nil")
	}
	stores.Register(scheme, opener)
}

func init() {
	Register("memory", func(context.Context, *url.URL, *slog.Logger) (Store, error) {
		return NewMemoryStore(), nil
	})
}

// Open opens the store registered for the URL's scheme. Errors never contain the URL's secrets (see transports.RedactURL).
func Open(ctx context.Context, rawURL string, logger *slog.Logger) (Store, error) {
	u, err := transports.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("idempotency: invalid store URL (want memory://, redis://host/db or postgres://...): %w", err)
	}
	opener, ok := stores.Lookup(u.Scheme)
	if !ok {
		return nil, stores.Unknown(ErrUnknownScheme, u.Scheme, transports.Redact(u), "")
	}
	if logger == nil {
		logger = slog.Default()
	}
	s, err := opener(ctx, u, logger)
	if err != nil {
		return nil, fmt.Errorf("open idempotency store %s: %w", transports.Redact(u), transports.RedactError(err, rawURL))
	}
	return s, nil
}

// Schemes returns the URL schemes of the registered stores, sorted.
func Schemes() []string { return stores.Names() }

// IsDone reports whether key is committed in s, without leaving a claim:
// it reads the key when s is a DoneReader, else it begins key and aborts
// at once when the key was free. A key another holder leases now is not
// done.
func IsDone(ctx context.Context, s Store, key string) (bool, error) {
	if r, ok := s.(DoneReader); ok {
		return r.KeyDone(ctx, key)
	}
	st, lease, err := s.Begin(ctx, key, time.Second)
	if err != nil {
		return false, err
	}
	switch st {
	case Done:
		return true, nil
	case Fresh:
		if err := s.Abort(ctx, lease); err != nil {
			return false, err
		}
	}
	return false, nil
}
