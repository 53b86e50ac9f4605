package bus

import (
	"errors"

	"github.com/busline/busline/middleware"
)

// Errors returned by the bus; match them with errors.Is.
var (
	// ErrInvalidConfig: Config is missing something or has a bad value.
	ErrInvalidConfig = errors.New("bus: invalid configuration")
	// ErrUnavailable: the broker or the dedup store cannot be reached (New,
	// NewContext, Start). Unlike ErrInvalidConfig, trying again later may work
	// — except when the broker refused the URL's credentials: that error
	// also matches transports.ErrAccessRefused.
	ErrUnavailable = errors.New("bus: broker unavailable")
	// ErrGroupConflict: another (service, listener) pair owns the consumer
	// group this listener's pair spells (see GroupName); Start refuses it.
	ErrGroupConflict = errors.New("bus: consumer group owned by another (service, listener) pair")
	// ErrInvalidListener: a listener name is empty or not allowed.
	ErrInvalidListener = errors.New("bus: invalid listener")
	// ErrDuplicateListener: the same listener name is registered twice in one service.
	ErrDuplicateListener = errors.New("bus: duplicate listener name")
	// ErrStarted: Listen was called after Start, or Start twice.
	ErrStarted = errors.New("bus: already started")
	// ErrNotReady: Ready found the bus not started, a listener not reading,
	// or the transport unreachable.
	ErrNotReady = errors.New("bus: not ready")
	// ErrConnectionsDropped: Close outlasted CloseBudget on a broker that did
	// not answer and dropped the connections of the transport or the dedup
	// store (those that implement transports.ConnectionDropper); events
	// whose acknowledgements did not reach the broker are delivered again.
	// When neither can drop its connections, Close waits for them instead
	// and does not return this error.
	ErrConnectionsDropped = errors.New("bus: connections dropped at close")
	// ErrClosed: the bus was closed.
	ErrClosed = errors.New("bus: closed")
	// ErrPayloadTooLarge: the encoded payload is larger than Config.MaxPayloadBytes.
	ErrPayloadTooLarge = errors.New("bus: payload too large")
	// ErrInvalidEvent: the Event is the zero value (not made by NewEvent).
	ErrInvalidEvent = errors.New("bus: invalid event")
	// ErrDecode: a delivered payload could not be decoded into the listener's
	// type. Such events are dead-lettered with the reason.
	ErrDecode = errors.New("bus: cannot decode event")
	// ErrPermanent matches every error marked with Permanent.
	ErrPermanent = middleware.ErrPermanent
)

// Permanent marks err as not worth retrying: the event is dead-lettered at
// once instead of being retried up to MaxDeliveries. Permanent(nil) is nil.
func Permanent(err error) error { return middleware.Permanent(err) }
