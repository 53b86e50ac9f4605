package main

import (
	"strings"

	"github.com/busline/busline/bus"
)

// checkEvent validates a full event name, "{api}.{name}", with bus.ValidateEventName.
func checkEvent(event string) (api, name string, err error) {
	i := strings.LastIndexByte(event, '.')
	if i < 0 {
		return "", "", usagef("event %q: want {api}.{name}, like competitor_prices.changed", event)
	}
	api, name = event[:i], event[i+1:]
	if err := bus.ValidateEventName(api, name); err != nil {
		return "", "", withCode(exitUsage, err)
	}
	return api, name, nil
}
