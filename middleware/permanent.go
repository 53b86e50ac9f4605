package middleware

import "errors"

// ErrPermanent matches (with errors.Is) every error marked with Permanent.
var ErrPermanent = errors.New("permanent error")

type permanentError struct{ err error }

func (e permanentError) Error() string        { return "permanent: " + e.err.Error() }
func (e permanentError) Unwrap() error        { return e.err }
func (e permanentError) Is(target error) bool { return target == ErrPermanent }

// Permanent marks err as not worth retrying: Retry returns it at once and
// DeadLetter dead-letters the event without waiting for MaxDeliveries.
// Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil || IsPermanent(err) {
		return err
	}
	return permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with Permanent.
func IsPermanent(err error) bool { return errors.Is(err, ErrPermanent) }
