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
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/transports"
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
number). The file is read whole before firing. Events are fired 1000 at a
time (bus.MaxBatchCall), and the IDs of each batch are printed once the
broker has stored it: when the broker fails part way, the IDs printed are
of the events stored, and the error names the first line whose event may
or may not be stored.

The source (ce-source) is "/{service}" with the service of the configuration
(BUSLINE_SERVICE), "busline" when none is set.

Before firing, --data (or every line of --lines) is validated against the
JSON Schemas that services published for the event (see busline schema):
each listener's, or the firers' when no one listens. A mismatch is refused with the JSON pointer of
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
			if !batch {
				if payload, err = a.readData(data); err != nil {
					return err
				}
			}
			var opts []bus.FireOption
			if cmd.Flags().Changed("id") {
				if strings.TrimSpace(id) == "" {
					return usagef("--id must not be empty")
				}
				opts = append(opts, bus.WithEventID(id))
			}
			if delay != 0 {
				if delay > transports.MaxScheduleAhead {
					return usagef("--delay %s is too far ahead: at most %s (30 days)", delay, transports.MaxScheduleAhead)
				}
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
			var payloads []jsonLine
			if batch {
				maxBytes := cfg.MaxPayloadBytes
				if maxBytes == 0 {
					maxBytes = bus.DefaultMaxPayloadBytes
				}
				if payloads, err = a.readLines(lines, maxBytes); err != nil {
					return err
				}
			}
			// The command opens the transport itself, as a tool
			// (toolOptions); the bus owns it from then on.
			t, _, err := a.openURLAs(cmd.Context(), cfg.Transport, cfg.Service)
			if err != nil {
				return err
			}
			b, err := bus.NewContext(cmd.Context(), cfg, bus.WithTransport(t))
			if err != nil {
				return unavailable(err)
			}
			defer b.Close()
			a.noteMemory(cfg.Transport, "no other process sees this event, and it is gone when busline exits")
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
	size    int // encoded, as the bus fires it: JSON escapes <, > and & as \u003c...
}

// readLines returns the payloads of the JSON Lines file path (- for
// stdin), every one checked to be JSON of at most maxBytes once compact;
// blank lines are skipped.
func (a *app) readLines(path string, maxBytes int) ([]jsonLine, error) {
	var in io.Reader = a.stdin
	name := "stdin"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, usagef("--lines: %v", err)
		}
		defer f.Close()
		in, name = f, path
	}
	sc := bufio.NewScanner(in)
	// Room for a payload of maxBytes with some white space around it.
	sc.Buffer(make([]byte, 0, 64<<10), maxBytes+64<<10)
	var out []jsonLine
	n := 0
	for sc.Scan() {
		n++
		t := bytes.TrimSpace(sc.Bytes())
		if n == 1 {
			t = bytes.TrimPrefix(t, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
		}
		if len(t) == 0 {
			continue
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, t); err != nil {
			return nil, usagef("--lines: line %d is not valid JSON: %v", n, err)
		}
		enc, err := bus.JSONCodec{}.Marshal(json.RawMessage(compact.Bytes()))
		if err != nil {
			return nil, usagef("--lines: line %d: %v", n, err)
		}
		if len(enc) > maxBytes {
			return nil, usagef("--lines: line %d is a payload of %d bytes once encoded, the maximum is %d (MaxPayloadBytes)", n, len(enc), maxBytes)
		}
		out = append(out, jsonLine{n: n, payload: json.RawMessage(compact.Bytes()), size: len(enc)})
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, usagef("--lines: line %d is longer than the largest payload (%d bytes, MaxPayloadBytes)", n+1, maxBytes)
		}
		return nil, usagef("--lines: %v", err)
	}
	if len(out) == 0 {
		return nil, usagef("--lines: no payload in %s", name)
	}
	return out, nil
}

// fireLines checks every payload (validate: against the published
// schemas), then fires them with bus.FireBatch, bus.MaxBatchCall at a
// time, printing the IDs of each batch once the broker stored it.
func (a *app) fireLines(ctx context.Context, b *bus.Bus, ev bus.Event[json.RawMessage], lines []jsonLine, validate bool, opts []bus.FireOption) error {
	// Below the broker's own limit too (NATS), before anything is fired.
	if most, why := b.MaxPayloadBytes(); most > 0 {
		for _, l := range lines {
			if l.size > most {
				return usagef("--lines: line %d is a payload of %d bytes once encoded, the maximum is %d (%s); nothing was fired", l.n, l.size, most, why)
			}
		}
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
	for chunk := range slices.Chunk(lines, bus.MaxBatchCall) {
		payloads := make([]json.RawMessage, len(chunk))
		for i, l := range chunk {
			payloads[i] = l.payload
		}
		ids, err := bus.FireBatch(ctx, b, ev, payloads, opts...)
		if err != nil && ids == nil {
			// Refused before anything was sent (FireBatch returns the IDs
			// with any error of the transport).
			return failed(fmt.Errorf("from line %d on, nothing was fired: %w", chunk[0].n, err))
		}
		if err != nil {
			return failed(fmt.Errorf("from line %d on, the events may or may not be stored (the IDs printed are of those stored): %w", chunk[0].n, err))
		}
		for i, id := range ids {
			if err := a.printFired(id, ev.Name(), chunk[i].n); err != nil {
				return err
			}
		}
	}
	return nil
}

// printFired prints the ID of an event fired from line n of --lines.
func (a *app) printFired(id, event string, n int) error {
	if a.json {
		return writeJSONLine(a.stdout, struct {
			ID    string `json:"id"`
			Event string `json:"event"`
			Line  int    `json:"line"`
		}{id, event, n})
	}
	_, err := fmt.Fprintln(a.stdout, id)
	return err
}
