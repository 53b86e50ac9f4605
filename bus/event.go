package bus

import (
	"fmt"
	"regexp"
)

var (
	apiPattern   = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)
	eventPattern = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// maxEventNameLen keeps names usable as Redis keys and AMQP routing keys.
const maxEventNameLen = 200

// Event is a typed event definition: its full name is "{api}.{name}" and
// its payload type is T. Define events once, as package variables, and
// share them between the services that fire and listen.
type Event[T any] struct {
	api, name string
	full      string // "{api}.{name}", made once
}

// NewEvent defines an event. api is lower snake case with dots between
// segments ("competitor_prices", "store.orders"); name is lower snake case,
// preferably in the past tense ("changed"). It panics on an invalid name,
// like regexp.MustCompile, because event definitions are program constants.
func NewEvent[T any](api, name string) Event[T] {
	if err := ValidateEventName(api, name); err != nil {
		panic(err)
	}
	return Event[T]{api: api, name: name, full: api + "." + name}
}

// ValidateEventName reports whether api and name form a valid event name.
func ValidateEventName(api, name string) error {
	switch {
	case !apiPattern.MatchString(api):
		return fmt.Errorf("%w: API %q must be lower snake case segments separated by dots, like \"competitor_prices\"", ErrInvalidEvent, api)
	case !eventPattern.MatchString(name):
		return fmt.Errorf("%w: name %q must be lower snake case, like \"changed\"", ErrInvalidEvent, name)
	case len(api)+1+len(name) > maxEventNameLen:
		return fmt.Errorf("%w: %s.%s is longer than %d characters", ErrInvalidEvent, api, name, maxEventNameLen)
	}
	return nil
}

// Name returns the full event name, "{api}.{name}": the topic on the bus.
func (e Event[T]) Name() string { return e.full }

// API returns the API part of the name.
func (e Event[T]) API() string { return e.api }

func (e Event[T]) String() string { return e.Name() }
