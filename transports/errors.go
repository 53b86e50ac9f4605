package transports

import (
	"errors"
	"fmt"
)

var (
	// ErrUnknownScheme is returned by Open for a URL whose scheme no imported driver registered.
	ErrUnknownScheme = errors.New("transports: unknown URL scheme")
	// ErrInvalidURL is returned for a URL that cannot be parsed or has a bad option.
	ErrInvalidURL = errors.New("transports: invalid URL")
	// ErrInvalidConfig is returned for a subscriber configuration a driver cannot use.
	ErrInvalidConfig = sentinel("transports: invalid configuration")
	// ErrUnsupported is returned when a driver cannot do what was asked
	// (for example Since: Beginning on a broker that keeps no history).
	ErrUnsupported = errors.New("transports: unsupported")
	// ErrNotAttempted marks a handler error that means the event was not
	// attempted at all (another consumer is processing it right now): it is
	// redelivered later and never counts toward dead-lettering.
	ErrNotAttempted = errors.New("transports: event not attempted; deliver it again later")
	// ErrNotFound is matched by every driver's error for something that
	// does not exist: a dead letter ID, a consumer group.
	ErrNotFound = errors.New("transports: not found")
	// ErrClosed is returned by a closed transport or subscriber.
	ErrClosed = errors.New("transports: closed")
	// ErrAccessRefused is matched by every driver's error for a broker
	// that was reached and refused the credentials (or permissions) the
	// URL gave: nothing to retry until the URL or the broker's users
	// change. The Redis and PostgreSQL dedup stores match it too.
	ErrAccessRefused = errors.New("transports: access refused (check the user, password and permissions of the URL)")
)

type sentinel string

func (s sentinel) Error() string { return string(s) }

func (s sentinel) with(detail string) error { return fmt.Errorf("%w: %s", s, detail) }
