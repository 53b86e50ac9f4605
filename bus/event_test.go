package bus_test

import (
	"errors"
	"testing"

	"github.com/busline/busline/bus"
)

func TestEventNames(t *testing.T) {
	valid := [][2]string{{"competitor_prices", "changed"}, {"store.orders", "order_placed"}, {"a1", "b2"}}
	for _, v := range valid {
		if err := bus.ValidateEventName(v[0], v[1]); err != nil {
			t.Errorf("%s.%s rejected: %v", v[0], v[1], err)
		}
	}
	if got := bus.NewEvent[int]("competitor_prices", "changed").Name(); got != "competitor_prices.changed" {
		t.Errorf("Name() = %q", got)
	}
	invalid := [][2]string{{"", "x"}, {"api", ""}, {"Api", "x"}, {"api", "Changed"}, {"a..b", "x"}, {"api", "a.b"}, {"api", "has-dash"}, {"api", "sp ace"}, {"1api", "x"}, {"api.", "x"}}
	for _, v := range invalid {
		if err := bus.ValidateEventName(v[0], v[1]); !errors.Is(err, bus.ErrInvalidEvent) {
			t.Errorf("%q/%q accepted (err %v)", v[0], v[1], err)
		}
	}
}

func TestNewEventPanicsOnInvalidName(t *testing.T) {
	defer func() {
		r := recover()
		err, ok := r.(error)
		if !ok || !errors.Is(err, bus.ErrInvalidEvent) {
			t.Errorf("recovered %v, want an ErrInvalidEvent", r)
		}
	}()
	bus.NewEvent[int]("Bad API", "x")
}
