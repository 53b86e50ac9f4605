package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/busline/busline/schema"
	"github.com/busline/busline/transports"
)

func (a *app) schemaCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schema",
		Short: "Event schemas on the broker: list, show, export, check a file before a deploy",
		Long: `schema works with the JSON Schemas that services publish on the broker at
Start: for every event a bus fires (bus.Declare) or listens to (bus.Listen),
the schema of its payload type, the service, the role and a version hash.

  list            every event, who fires it, who listens, the hashes, and the
                  breaking differences between firers and listeners (the
                  default: busline schema is busline schema list)
  show EVENT      the schemas of one event
  export          the schema file of one service, from what it published
  check FILE      compare a schema file (bus.ExportSchemas in the service's
                  tests) with the broker: exit 1 on a breaking change

docs/schemas.md has the compatibility rules.`,
	}
	list := a.schemaListCommand()
	cmd.Args, cmd.RunE = list.Args, list.RunE
	cmd.AddCommand(list, a.schemaShowCommand(), a.schemaExportCommand(), a.schemaCheckCommand())
	return cmd
}

// publishedSchemas reads every schema record of the broker.
func (a *app) publishedSchemas(ctx context.Context) ([]schema.Record, string, error) {
	t, where, err := a.openTransport(ctx)
	if err != nil {
		return nil, "", err
	}
	defer t.Close()
	rs, ok := t.(transports.RecordStore)
	if !ok {
		return nil, where, withCode(exitUnsupported, fmt.Errorf("%s keeps no records, so no schemas: %w", where, transports.ErrUnsupported))
	}
	recs, err := schema.Published(ctx, rs)
	if err != nil && len(recs) == 0 {
		return nil, where, failed(err)
	}
	if err != nil {
		a.progressf("warning: %v", err)
	}
	return recs, where, nil
}

// eventSchemas is one event in `schema list --json`.
type eventSchemas struct {
	Event        string           `json:"event"`
	Fires        []schemaSide     `json:"fires"`
	Listens      []schemaSide     `json:"listens"`
	HashesDiffer bool             `json:"hashes_differ"`
	Breaking     []schema.Finding `json:"breaking"`
}

type schemaSide struct {
	Service     string          `json:"service"`
	Hash        string          `json:"hash"`
	Listeners   []string        `json:"listeners,omitempty"`
	Process     string          `json:"process,omitempty"`
	PublishedAt *string         `json:"published_at"`
	Schema      json.RawMessage `json:"schema"`
}

func groupByEvent(recs []schema.Record) []eventSchemas {
	conflicts := schema.Conflicts(recs)
	var out []eventSchemas
	for _, r := range recs {
		if len(out) == 0 || out[len(out)-1].Event != r.Event {
			out = append(out, eventSchemas{Event: r.Event, Fires: []schemaSide{}, Listens: []schemaSide{}, Breaking: []schema.Finding{}})
		}
		e := &out[len(out)-1]
		side := schemaSide{Service: r.Service, Hash: r.Hash, Listeners: r.Listeners, Process: r.Process, PublishedAt: jsonTime(r.PublishedAt), Schema: r.Schema}
		if r.Role == schema.RoleFires {
			e.Fires = append(e.Fires, side)
		} else {
			e.Listens = append(e.Listens, side)
		}
	}
	for i := range out {
		e := &out[i]
		hashes := map[string]bool{}
		for _, s := range append(append([]schemaSide{}, e.Fires...), e.Listens...) {
			hashes[s.Hash] = true
		}
		e.HashesDiffer = len(hashes) > 1
		for _, c := range conflicts {
			if c.Event == e.Event {
				e.Breaking = append(e.Breaking, c)
			}
		}
	}
	return out
}

func (a *app) schemaListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "Every event with a published schema: who fires, who listens, hashes, disagreements",
		Long: `list prints every event whose schema a service published: each service that
fires it and each that listens, with the version hash of its schema (the first
12 hex digits of the SHA-256 of the canonical schema). A "*" marks an event
whose services do not all agree on one hash; the breaking differences between
a firer and a listener follow the table.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			recs, where, err := a.publishedSchemas(cmd.Context())
			if err != nil {
				return err
			}
			events := groupByEvent(recs)
			if a.json {
				return writeJSON(a.stdout, struct {
					Transport string         `json:"transport"`
					Events    []eventSchemas `json:"events"`
				}{where, nonNil(events)})
			}
			if len(events) == 0 {
				_, err := fmt.Fprintf(a.stdout, "no event schemas on %s\n", where)
				return err
			}
			t := newTable(a.stdout, "EVENT", "ROLE", "SERVICE", "HASH", "LISTENERS", "PUBLISHED")
			for _, e := range events {
				name := e.Event
				if e.HashesDiffer {
					name += " *"
				}
				for _, r := range recs {
					if r.Event != e.Event {
						continue
					}
					t.row(name, string(r.Role), r.Service, schema.ShortHash(r.Hash), orDash(strings.Join(r.Listeners, ",")), stamp(r.PublishedAt))
				}
			}
			if err := t.flush(); err != nil {
				return err
			}
			var breaking []schema.Finding
			for _, e := range events {
				breaking = append(breaking, e.Breaking...)
			}
			if len(breaking) > 0 {
				fmt.Fprintf(a.stdout, "\n%d breaking difference(s) between firers and listeners:\n", len(breaking))
				printFindings(a.stdout, breaking)
			}
			return nil
		},
	}
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func printFindings(w io.Writer, fs []schema.Finding) {
	for _, f := range fs {
		fmt.Fprintf(w, "  %s: %s fires, %s listens: %s\n", f.Event, f.Firer, f.Listener, f.Message)
	}
}

func (a *app) schemaShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show EVENT",
		Short: "The schemas that services published for one event",
		Args:  exactArgs("EVENT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			event := args[0]
			if _, _, err := checkEvent(event); err != nil {
				return err
			}
			recs, where, err := a.publishedSchemas(cmd.Context())
			if err != nil {
				return err
			}
			var mine []schema.Record
			for _, r := range recs {
				if r.Event == event {
					mine = append(mine, r)
				}
			}
			if len(mine) == 0 {
				return notFoundf("no service published a schema of %s on %s", event, where)
			}
			if a.json {
				return writeJSON(a.stdout, struct {
					Event   string          `json:"event"`
					Schemas []schema.Record `json:"schemas"`
				}{event, mine})
			}
			for i, r := range mine {
				if i > 0 {
					fmt.Fprintln(a.stdout)
				}
				who := r.Service
				if len(r.Listeners) > 0 {
					who += " (" + strings.Join(r.Listeners, ", ") + ")"
				}
				fmt.Fprintf(a.stdout, "%s %s %s, published %s by %s\n", who, r.Role, r.Hash, stamp(r.PublishedAt), orDash(r.Process))
				if err := writeJSON(a.stdout, r.Schema); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func (a *app) schemaExportCommand() *cobra.Command {
	var service, output string
	cmd := &cobra.Command{
		Use:   "export --service NAME [-o FILE]",
		Short: "Write the schema file of one service from what it published",
		Long: `export writes the schema file (the format of bus.ExportSchemas and of
schema check) of the events one service fires and listens to, from the
records it published on the broker: a snapshot of what runs, to compare a
new build against. A service's CI exports from code instead, with
Bus.ExportSchemas in a test (docs/schemas.md).`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if service == "" {
				return usagef("export needs --service NAME")
			}
			recs, where, err := a.publishedSchemas(cmd.Context())
			if err != nil {
				return err
			}
			f := schema.File{Service: service, Schemas: []schema.Record{}}
			for _, r := range recs {
				if r.Service == service {
					f.Schemas = append(f.Schemas, r)
				}
			}
			if len(f.Schemas) == 0 {
				return notFoundf("service %s published no schema on %s", service, where)
			}
			w := a.stdout
			if output != "" && output != "-" {
				file, err := os.Create(output)
				if err != nil {
					return withCode(exitFailure, err)
				}
				defer file.Close()
				w = file
			}
			if err := schema.WriteFile(w, f); err != nil {
				return failed(err)
			}
			if output != "" && output != "-" {
				a.progressf("wrote %d schema(s) of %s to %s", len(f.Schemas), service, output)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&service, "service", "", "the service whose schemas to export")
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to FILE instead of stdout")
	return cmd
}

func (a *app) schemaCheckCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "check FILE",
		Short: "Compare a schema file with the broker; exit 1 on a breaking change",
		Long: `check reads a schema file (bus.ExportSchemas, or schema export; - for stdin)
and compares each schema in it with the schemas other services published:

  - a schema the file's service fires must give every listener of the event
    each field the listener requires, with a type the listener accepts;
  - every firer of an event the file's service listens to must give the
    fields the file's schema requires, with the types it accepts.

So a removed or renamed field that a listener requires, a changed type, and a
newly required field are breaking; an added field is not. The exit code is 1
when something breaks, 0 otherwise: run it in CI before a deploy.`,
		Args: exactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r io.Reader = a.stdin
			if args[0] != "-" {
				file, err := os.Open(args[0])
				if err != nil {
					return usagef("%v", err)
				}
				defer file.Close()
				r = file
			}
			f, err := schema.ReadFile(r)
			if err != nil {
				return usagef("%s: %v", args[0], err)
			}
			recs, where, err := a.publishedSchemas(cmd.Context())
			if err != nil {
				return err
			}
			rep := schema.Check(f, recs)
			if a.json {
				if err := writeJSON(a.stdout, struct {
					Transport string `json:"transport"`
					OK        bool   `json:"ok"`
					schema.Report
				}{where, rep.OK(), rep}); err != nil {
					return err
				}
			} else {
				printReport(a.stdout, f, rep, where)
			}
			if !rep.OK() {
				return withCode(exitFailure, fmt.Errorf("%d breaking change(s) in the schemas of %s", len(rep.Breaking), f.Service))
			}
			return nil
		},
	}
}

func printReport(w io.Writer, f schema.File, rep schema.Report, where string) {
	fmt.Fprintf(w, "checked %d schema(s) of %s against %s: %d firer/listener pair(s) compared\n", len(f.Schemas), f.Service, where, rep.Compared)
	if len(rep.Changed) > 0 {
		fmt.Fprintf(w, "changed since last published: %s\n", strings.Join(rep.Changed, ", "))
	}
	if rep.OK() {
		fmt.Fprintln(w, "no breaking change")
		return
	}
	sort.SliceStable(rep.Breaking, func(i, j int) bool { return rep.Breaking[i].Event < rep.Breaking[j].Event })
	fmt.Fprintf(w, "%d breaking change(s):\n", len(rep.Breaking))
	printFindings(w, rep.Breaking)
}
