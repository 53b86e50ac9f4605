package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/busline/busline/bus"
)

func (a *app) fireCommand() *cobra.Command {
	var data, id, lines string
	var delay time.Duration
	cmd := &cobra.Command{
		Use:   "fire EVENT --data JSON | --lines FILE",
		Short: "Fire an event with a raw JSON payload and print its ID",
		Long: `fire places one event on the bus, as bus.Fire does (the same envelope: ce-*
metadata, a UUIDv7 event ID, content-type application/json), and prints its ID
once the broker accepted it.

--data is the JSON payload: inline, @FILE to read a file, or - to read stdin.
--lines FILE (or - for stdin) fires one event per line instead, each line a
JSON payload (JSON Lines; blank lines are skipped), through bus.FireBatch: the
events go to the broker together rather than one round trip each. Every line
is checked before any event is fired; the IDs are printed one per line, in
the order of the lines (with --json, one object per line with its line
number). When the broker fails part way, the error says how many events
were stored before the failure; the rest may or may not be.

The source (ce-source) is "/{service}" with the service of the configuration
(BUSLINE_SERVICE), "busline" when none is set.

Before firing, --data is validated against the JSON Schemas that services
published for the event (see busline schema): each listener's, or the
firers' when no one listens. A mismatch is refused with the JSON pointer of
the offending value and exit code 1; --no-validate skips the check.`,
		Args: exactArgs("EVENT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			event := args[0]
			api, name, err := checkEvent(event)
			if err != nil {
				return err
			}
			batch := cmd.Flags().Changed("lines")
			switch {
			case batch && cmd.Flags().Changed("data"):
				return usagef("fire takes --data or --lines, not both")
			case batch && cmd.Flags().Changed("id"):
				return usagef("--id names one event; it cannot go with --lines")
			case !batch && !cmd.Flags().Changed("data"):
				return usagef("fire needs --data JSON (inline, @FILE or - for stdin) or --lines FILE")
			}
			var payload []byte
			var payloads []jsonLine
			if batch {
				payloads, err = a.readLines(lines)
			} else {
				payload, err = a.readData(data)
			}
			if err != nil {
				return err
			}
			var opts []bus.FireOption
			if cmd.Flags().Changed("id") {
				if strings.TrimSpace(id) == "" {
					return usagef("--id must not be empty")
				}
				opts = append(opts, bus.WithEventID(id))
			}
			if delay != 0 {
				opts = append(opts, bus.WithDelay(delay))
			}
			cfg, err := a.busConfig()
			if err != nil {
				return err
			}
			if cfg.Transport == "" {
				_, err := a.transportURL()
				return err
			}
			if cfg.Service == "" {
				cfg.Service = "busline"
			}
			cfg.Idempotency = "memory://" // fire never deduplicates; do not open the configured store
			cfg.Logger = a.logger()
			if err := cfg.Validate(); err != nil {
				return withCode(exitUsage, err)
			}
			b, err := bus.New(cfg)
			if err != nil {
				return unavailable(err)
			}
			defer b.Close()
			noValidate, _ := cmd.Flags().GetBool("no-validate")
			ev := bus.NewEvent[json.RawMessage](api, name)
			if batch {
				return a.fireLines(cmd.Context(), b, ev, payloads, !noValidate, opts)
			}
			if !noValidate {
				if err := a.validateData(cmd.Context(), b.Transport(), event, payload); err != nil {
					return err
				}
			}
			eid, err := bus.Fire(cmd.Context(), b, ev, json.RawMessage(payload), opts...)
			if err != nil {
				return failed(err)
			}
			if a.json {
				return writeJSON(a.stdout, struct {
					ID    string `json:"id"`
					Event string `json:"event"`
				}{eid, event})
			}
			_, err = fmt.Fprintln(a.stdout, eid)
			return err
		},
	}
	cmd.Flags().StringVar(&data, "data", "", "the JSON payload: inline, @FILE, or - for stdin")
	cmd.Flags().StringVar(&lines, "lines", "", "fire one event per line of this file (- for stdin), each line a JSON payload")
	cmd.Flags().DurationVar(&delay, "delay", 0, "deliver no earlier than this long from now (at most 720h; see docs/scheduling.md)")
	cmd.Flags().StringVar(&id, "id", "", "fire with this event ID instead of a new UUIDv7 (a duplicate for idempotent listeners)")
	cmd.Flags().Bool("no-validate", false, "do not check --data or --lines against the schemas services published for the event")
	return cmd
}

// readData returns the payload --data names, checked to be JSON.
func (a *app) readData(data string) ([]byte, error) {
	var raw []byte
	var err error
	switch {
	case data == "-":
		raw, err = io.ReadAll(a.stdin)
	case strings.HasPrefix(data, "@"):
		raw, err = os.ReadFile(data[1:])
	default:
		raw = []byte(data)
	}
	if err != nil {
		return nil, usagef("--data: %v", err)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, usagef("--data is not valid JSON: %v", err)
	}
	return raw, nil
}

// jsonLine is one payload of `fire --lines` and its line number.
type jsonLine struct {
	n       int
	payload json.RawMessage
}

// readLines returns the payloads of the JSON Lines file path (- for
// stdin), every one checked to be JSON; blank lines are skipped.
func (a *app) readLines(path string) ([]jsonLine, error) {
	var in io.Reader = a.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, usagef("--lines: %v", err)
		}
		defer f.Close()
		in = f
	}
	r := bufio.NewReader(in)
	var out []jsonLine
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, usagef("--lines: %v", err)
		}
		if t := bytes.TrimSpace(line); len(t) > 0 {
			if !json.Valid(t) {
				return nil, usagef("--lines: line %d is not valid JSON", n)
			}
			out = append(out, jsonLine{n: n, payload: json.RawMessage(t)})
		}
		if err != nil {
			break
		}
	}
	if len(out) == 0 {
		return nil, usagef("--lines: no payload in %s", path)
	}
	return out, nil
}

// fireLines checks every payload (validate: against the published
// schemas), fires them with bus.FireBatch and prints their IDs.
func (a *app) fireLines(ctx context.Context, b *bus.Bus, ev bus.Event[json.RawMessage], lines []jsonLine, validate bool, opts []bus.FireOption) error {
	payloads := make([]json.RawMessage, len(lines))
	for i, l := range lines {
		payloads[i] = l.payload
	}
	if validate {
		check, err := a.dataValidator(ctx, b.Transport(), ev.Name(), "--lines")
		if err != nil {
			return err
		}
		for _, l := range lines {
			if err := check(l.payload); err != nil {
				return fmt.Errorf("line %d: %w", l.n, err)
			}
		}
	}
	ids, err := bus.FireBatch(ctx, b, ev, payloads, opts...)
	if err != nil {
		return failed(err)
	}
	for i, id := range ids {
		if a.json {
			if err := writeJSONLine(a.stdout, struct {
				ID    string `json:"id"`
				Event string `json:"event"`
				Line  int    `json:"line"`
			}{id, ev.Name(), lines[i].n}); err != nil {
				return err
			}
			continue
		}
		if _, err := fmt.Fprintln(a.stdout, id); err != nil {
			return err
		}
	}
	return nil
}
