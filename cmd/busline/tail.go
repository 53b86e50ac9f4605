package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/transports"
)

// errEnough ends a tail that printed --count events.
var errEnough = errors.New("enough events")

func (a *app) tailCommand() *cobra.Command {
	var since string
	var limit int
	cmd := &cobra.Command{
		Use:   "tail EVENT",
		Short: "Follow the events fired as EVENT without joining any consumer group",
		Long: `tail prints the events fired as EVENT as they arrive, one per line, until
Ctrl-C (exit code 0) or --count events. It joins no consumer group and
acknowledges nothing, so no listener misses an event because of it.

--since starts in the retained history: "beginning", an RFC 3339 time, or a
duration such as 10m (that long ago). Redis and memory keep history; AMQP does
not (exit code 4).

Each line: the fire time (ce-time), the event ID and the payload. With --json,
one JSON object per line.`,
		Args: exactArgs("EVENT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			event := args[0]
			if _, _, err := checkEvent(event); err != nil {
				return err
			}
			if limit < 0 {
				return usagef("--count must not be negative")
			}
			from, err := parseSince(since, time.Now())
			if err != nil {
				return err
			}
			t, url, err := a.openTransport(cmd.Context())
			if err != nil {
				return err
			}
			defer t.Close()
			tl, ok := t.(transports.Tailer)
			if !ok {
				return withCode(exitUnsupported, fmt.Errorf("%w: the %s transport cannot tail events", transports.ErrUnsupported, scheme(url)))
			}
			seen := 0
			err = tl.Tail(cmd.Context(), event, transports.TailOptions{
				Since: from,
				Ready: func() {
					a.progressf("Following %s on %s from %s (Ctrl-C to stop).", event, url, sinceWords(from))
					a.noteMemory(url, "events fired from another process never show here")
				},
			}, func(ev transports.TailedEvent) error {
				if err := a.printTailed(ev); err != nil {
					return err
				}
				seen++
				if limit > 0 && seen >= limit {
					return errEnough
				}
				return nil
			})
			switch {
			case errors.Is(err, errEnough), errors.Is(err, context.Canceled):
				return nil
			case err != nil:
				return failed(fmt.Errorf("tail %s on %s: %w", event, url, err))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&since, "since", "", `start in history: "beginning", an RFC 3339 time, or a duration ago like 10m (default: new events only)`)
	cmd.Flags().IntVarP(&limit, "count", "n", 0, "stop after this many events (0: until interrupted)")
	return cmd
}

// parseSince reads --since.
func parseSince(s string, now time.Time) (transports.Since, error) {
	s = strings.TrimSpace(s)
	if d, err := time.ParseDuration(s); err == nil && s != "" {
		if d <= 0 {
			return transports.Since{}, usagef("--since %s: a duration ago must be positive", s)
		}
		return transports.SinceTime(now.Add(-d)), nil
	}
	since, err := bus.ParseSince(s)
	if err != nil {
		return transports.Since{}, usagef(`--since %q: want "beginning", an RFC 3339 time or a duration like 10m`, s)
	}
	return since, nil
}

func sinceWords(s transports.Since) string {
	if t, ok := s.Time(); ok {
		return t.UTC().Format(timeLayout)
	}
	if s.IsBeginning() {
		return "the beginning"
	}
	return "now"
}

// tailDoc is one line of tail --json.
type tailDoc struct {
	Event    string            `json:"event"`
	ID       string            `json:"id"`
	Position string            `json:"position"`
	At       *string           `json:"at"`
	FiredAt  *string           `json:"fired_at"`
	Metadata map[string]string `json:"metadata"`
	Payload  any               `json:"payload"`
	Error    string            `json:"error,omitempty"`
}

func (a *app) printTailed(ev transports.TailedEvent) error {
	fired, _ := time.Parse(time.RFC3339Nano, ev.Message.Metadata.Get(bus.MetaTime))
	if a.json {
		doc := tailDoc{
			Event: ev.Topic, ID: ev.Message.UUID, Position: ev.Position, At: jsonTime(ev.At),
			FiredAt: jsonTime(fired), Metadata: ev.Message.Metadata, Payload: payloadJSON(ev.Message.Payload),
		}
		if doc.Metadata == nil {
			doc.Metadata = map[string]string{}
		}
		if ev.Err != nil {
			doc.Error = ev.Err.Error()
		}
		return writeJSONLine(a.stdout, doc)
	}
	when := fired
	if when.IsZero() {
		when = ev.At
	}
	body := string(payloadJSON(ev.Message.Payload))
	if ev.Err != nil {
		body = "! " + ev.Err.Error()
	}
	if g := ev.Message.Metadata.Get(transports.MetaReplayGroup); g != "" {
		body = "(replayed from the dead letters of " + g + ") " + body
	}
	_, err := fmt.Fprintf(a.stdout, "%s  %s  %s\n", stamp(when), ev.Message.UUID, body)
	return err
}
