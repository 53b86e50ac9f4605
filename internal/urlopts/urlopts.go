// Package urlopts reads the Busline options of a transport URL's query:
// each option is taken out of the query as it is read, so that what is left
// is either unknown or meant for the client library, and a bad value is an
// error that wraps transports.ErrInvalidURL and names the transport, the
// option and the value.
package urlopts

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/busline/busline/transports"
)

// Query is the query of one URL being read. Its methods remove each option
// they read from Values.
type Query struct {
	// Transport names the transport in errors ("redis option ...").
	Transport string
	// Values is what is left of the query.
	Values url.Values
}

// Bad returns the error for option key with the value val: it wraps
// transports.ErrInvalidURL and err.
func (q Query) Bad(key, val string, err error) error {
	return fmt.Errorf("%w: %s option %s=%q: %w", transports.ErrInvalidURL, q.Transport, key, val, err)
}

// Take removes option key and returns its last value; ok is false when the
// query does not have it.
func (q Query) Take(key string) (val string, ok bool) {
	vs, ok := q.Values[key]
	delete(q.Values, key)
	if !ok || len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

// Int reads option key as a decimal integer of at least min and passes it
// to set; set is not called when the option is absent.
func (q Query) Int(key string, min int64, set func(int64)) error {
	v, ok := q.Take(key)
	if !ok {
		return nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return q.Bad(key, v, err)
	}
	if n < min {
		return q.Bad(key, v, fmt.Errorf("must be at least %d", min))
	}
	set(n)
	return nil
}

// Range says which durations Duration accepts.
type Range int

const (
	// Positive accepts durations above zero.
	Positive Range = iota
	// NonNegative accepts zero and above.
	NonNegative
	// Any accepts every duration.
	Any
)

// Duration reads option key as a time.ParseDuration string within r and
// passes it to set; set is not called when the option is absent.
func (q Query) Duration(key string, r Range, set func(time.Duration)) error {
	v, ok := q.Take(key)
	if !ok {
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return q.Bad(key, v, err)
	}
	switch {
	case r == Positive && d <= 0:
		return q.Bad(key, v, errors.New("must be positive"))
	case r == NonNegative && d < 0:
		return q.Bad(key, v, errors.New("must not be negative"))
	}
	set(d)
	return nil
}

// Bool reads option key with strconv.ParseBool and passes it to set; set is
// not called when the option is absent.
func (q Query) Bool(key string, set func(bool)) error {
	v, ok := q.Take(key)
	if !ok {
		return nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return q.Bad(key, v, err)
	}
	set(b)
	return nil
}

// All runs the readers in order and returns the first error.
func All(readers ...func() error) error {
	for _, r := range readers {
		if err := r(); err != nil {
			return err
		}
	}
	return nil
}

// eventName is the full name of an event, "{api}.{name}" (bus.NewEvent).
var eventName = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$`)

// MaxLenByEvent reads every option "maxlen.{event}" as an integer of at
// least 0 into *dst (made when the first is found): the per-event stream
// caps both stream transports accept.
func (q Query) MaxLenByEvent(dst *map[string]int64) error {
	for key := range q.Values {
		event, ok := strings.CutPrefix(key, "maxlen.")
		if !ok {
			continue
		}
		if !eventName.MatchString(event) {
			return q.Bad(key, q.Values.Get(key), fmt.Errorf("no event is named %q: event names are api.name, in lower case letters, digits and _", event))
		}
		if err := q.Int(key, 0, func(n int64) {
			if *dst == nil {
				*dst = map[string]int64{}
			}
			(*dst)[event] = n
		}); err != nil {
			return err
		}
	}
	return nil
}

// Into returns a setter for Int that stores the value in *dst.
func Into[T ~int | ~int64](dst *T) func(int64) { return func(n int64) { *dst = T(n) } }

// IntoDuration returns a setter for Duration that stores the value in *dst.
func IntoDuration(dst *time.Duration) func(time.Duration) {
	return func(d time.Duration) { *dst = d }
}
