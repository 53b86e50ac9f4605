package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/busline/busline/bus"
)

func (a *app) fireCommand() *cobra.Command {
	var data, id string
	var delay time.Duration
	cmd := &cobra.Command{
		Use:   "fire EVENT --data JSON",
		Short: "Fire an event with a raw JSON payload and print its ID",
		Long: `fire places one event on the bus, as bus.Fire does (the same envelope: ce-*
metadata, a UUIDv7 event ID, content-type application/json), and prints its ID
once the broker accepted it.

--data is the JSON payload: inline, @FILE to read a file, or - to read stdin.
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
			if !cmd.Flags().Changed("data") {
				return usagef("fire needs --data JSON (inline, @FILE or - for stdin)")
			}
			payload, err := a.readData(data)
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
			if noValidate, _ := cmd.Flags().GetBool("no-validate"); !noValidate {
				if err := a.validateData(cmd.Context(), b.Transport(), event, payload); err != nil {
					return err
				}
			}
			ev := bus.NewEvent[json.RawMessage](api, name)
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
	cmd.Flags().DurationVar(&delay, "delay", 0, "deliver no earlier than this long from now (at most 720h; see docs/scheduling.md)")
	cmd.Flags().StringVar(&id, "id", "", "fire with this event ID instead of a new UUIDv7 (a duplicate for idempotent listeners)")
	cmd.Flags().Bool("no-validate", false, "do not check --data against the schemas services published for the event")
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
