package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/busline/busline/transports"
)

// scheduledDoc is one event name's scheduled events in inspect --json.
type scheduledDoc struct {
	Event   string `json:"event"`
	Count   int64  `json:"count"`
	NextDue string `json:"next_due"`
}

// inspectScheduled reads the events waiting for their due time, per event
// name (only those of events when given). A transport that cannot say
// returns nil and a note for people.
func inspectScheduled(ctx context.Context, t transports.Transport, events []string) ([]transports.ScheduledInfo, string, error) {
	s, ok := t.(transports.Scheduler)
	if !ok {
		return nil, "", nil
	}
	list, err := s.Scheduled(ctx)
	if errors.Is(err, transports.ErrUnsupported) {
		return nil, "scheduled events (fired with a delay) are not counted per event on this transport; see docs/scheduling.md", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("scheduled events: %w", err)
	}
	if len(events) == 0 {
		return list, "", nil
	}
	var out []transports.ScheduledInfo
	for _, si := range list {
		for _, e := range events {
			if si.Event == e {
				out = append(out, si)
			}
		}
	}
	return out, "", nil
}

// printScheduled writes the SCHEDULED table, when something waits.
func printScheduled(w io.Writer, list []transports.ScheduledInfo) error {
	if len(list) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	t := newTable(w, "EVENT", "SCHEDULED", "NEXT DUE")
	for _, si := range list {
		t.row(si.Event, strconv.FormatInt(si.Count, 10), stamp(si.NextDue))
	}
	return t.flush()
}

func scheduledJSON(list []transports.ScheduledInfo) []scheduledDoc {
	out := []scheduledDoc{}
	for _, si := range list {
		out = append(out, scheduledDoc{Event: si.Event, Count: si.Count, NextDue: si.NextDue.UTC().Format(time.RFC3339Nano)})
	}
	return out
}
