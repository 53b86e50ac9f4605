package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/busline/busline/transports"
)

func (a *app) deadCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dead",
		Short: "List, show, replay and purge the dead letters of a consumer group",
		Long: `dead works on the dead letters of one consumer group ("{service}-{listener}"):
the events the group gave up on, with the reason and the number of attempts.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usagef("dead needs a subcommand: list, show, replay or purge")
		},
	}
	cmd.AddCommand(a.deadListCommand(), a.deadShowCommand(), a.deadReplayCommand(), a.deadPurgeCommand())
	return cmd
}

// deadStore opens the transport and returns its dead-letter store.
func (a *app) deadStore(ctx context.Context) (transports.DeadLetterStore, func(), string, error) {
	t, url, err := a.openTransport(ctx)
	if err != nil {
		return nil, nil, "", err
	}
	ds, ok := t.(transports.DeadLetterStore)
	if !ok {
		_ = t.Close()
		return nil, nil, "", withCode(exitUnsupported, fmt.Errorf("%w: the %s transport keeps no dead letters", transports.ErrUnsupported, scheme(url)))
	}
	return ds, func() { _ = t.Close() }, url, nil
}

// deadDoc is a dead letter in JSON.
type deadDoc struct {
	ID       string            `json:"id"`
	EventID  string            `json:"event_id"`
	Event    string            `json:"event"`
	Group    string            `json:"group"`
	Attempts int               `json:"attempts"`
	DeadAt   *string           `json:"dead_at"`
	Reason   string            `json:"reason"`
	Metadata map[string]string `json:"metadata,omitempty"`
	Payload  any               `json:"payload,omitempty"`
}

func toDeadDoc(d transports.DeadLetter, full bool) deadDoc {
	doc := deadDoc{ID: d.ID, Event: d.Topic, Group: d.Group, Attempts: d.Attempts, DeadAt: jsonTime(d.DeadAt), Reason: d.Reason}
	if d.Message != nil {
		doc.EventID = d.Message.UUID
		if full {
			doc.Metadata = d.Message.Metadata
			if doc.Metadata == nil {
				doc.Metadata = map[string]string{}
			}
			doc.Payload = payloadJSON(d.Message.Payload)
		}
	}
	return doc
}

func eventID(d transports.DeadLetter) string {
	if d.Message == nil {
		return "-"
	}
	return d.Message.UUID
}

func (a *app) deadListCommand() *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "list GROUP",
		Short: "List the dead letters of GROUP, oldest first, with reason and attempts",
		Args:  exactArgs("GROUP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			group := args[0]
			if limit < 0 {
				return usagef("--limit must not be negative")
			}
			ds, done, url, err := a.deadStore(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			list, err := ds.DeadLetters(cmd.Context(), group, limit)
			if err != nil {
				return failed(fmt.Errorf("list dead letters of %s on %s: %w", group, url, err))
			}
			if err := knownIfNone(cmd.Context(), ds, group, len(list)); err != nil {
				return err
			}
			if a.json {
				docs := make([]deadDoc, 0, len(list))
				for _, d := range list {
					docs = append(docs, toDeadDoc(d, false))
				}
				return writeJSON(a.stdout, struct {
					Group       string    `json:"group"`
					Count       int       `json:"count"`
					DeadLetters []deadDoc `json:"dead_letters"`
				}{group, len(docs), docs})
			}
			if len(list) == 0 {
				fmt.Fprintf(a.stdout, "No dead letters in group %s.\n", group)
				return nil
			}
			t := newTable(a.stdout, "ID", "EVENT ID", "EVENT", "ATTEMPTS", "DEAD AT", "REASON")
			for _, d := range list {
				t.row(d.ID, eventID(d), orDash(d.Topic), strconv.Itoa(d.Attempts), stamp(d.DeadAt), oneLine(d.Reason, 72))
			}
			return t.flush()
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "list at most this many (0: all)")
	return cmd
}

// findDead returns the dead letter id of group, or a not-found error.
func findDead(ctx context.Context, ds transports.DeadLetterStore, group, id string) (transports.DeadLetter, error) {
	list, err := ds.DeadLetters(ctx, group, 0)
	if err != nil {
		return transports.DeadLetter{}, failed(fmt.Errorf("list dead letters of %s: %w", group, err))
	}
	i := slices.IndexFunc(list, func(d transports.DeadLetter) bool { return d.ID == id })
	if i < 0 {
		return transports.DeadLetter{}, notFoundf("no dead letter %q in group %s (busline dead list %s shows the IDs)", id, group, group)
	}
	return list[i], nil
}

func (a *app) deadShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show GROUP ID",
		Short: "Show one dead letter of GROUP: reason, attempts, metadata and payload",
		Args:  exactArgs("GROUP", "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			group, id := args[0], args[1]
			ds, done, _, err := a.deadStore(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			d, err := findDead(cmd.Context(), ds, group, id)
			if err != nil {
				return err
			}
			doc := toDeadDoc(d, true)
			if a.json {
				return writeJSON(a.stdout, doc)
			}
			t := newTable(a.stdout, "ID:", d.ID)
			t.row("Group:", d.Group)
			t.row("Event:", orDash(d.Topic))
			t.row("Event ID:", eventID(d))
			t.row("Attempts:", strconv.Itoa(d.Attempts))
			t.row("Dead at:", stamp(d.DeadAt))
			t.row("Reason:", d.Reason)
			if err := t.flush(); err != nil {
				return err
			}
			if len(doc.Metadata) > 0 {
				fmt.Fprintln(a.stdout, "Metadata:")
				keys := make([]string, 0, len(doc.Metadata))
				for k := range doc.Metadata {
					keys = append(keys, k)
				}
				slices.Sort(keys)
				t := newTable(a.stdout)
				for _, k := range keys {
					t.row("  "+k+":", doc.Metadata[k])
				}
				if err := t.flush(); err != nil {
					return err
				}
			}
			fmt.Fprintln(a.stdout, "Payload:")
			if d.Message != nil {
				return writeJSON(a.stdout, doc.Payload)
			}
			return nil
		},
	}
}

func (a *app) deadReplayCommand() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "replay GROUP [ID]",
		Short: "Send one dead letter (ID) or every one (--all) back to GROUP",
		Long: `replay sends dead letters back to their group as fresh deliveries (attempt 1)
with their original event ID, so that deduplication still applies, and removes
them from the dead letters. Give the ID of one (see dead list) or --all.`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) == 0 || len(args) > 2:
				return usagef("replay takes GROUP and either an ID or --all")
			case all && len(args) == 2:
				return usagef("replay takes either an ID or --all, not both")
			case !all && len(args) == 1:
				return usagef("replay %s: give the ID of a dead letter (busline dead list %s) or --all", args[0], args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			group := args[0]
			ds, done, url, err := a.deadStore(ctx)
			if err != nil {
				return err
			}
			defer done()
			var todo []transports.DeadLetter
			if all {
				if todo, err = ds.DeadLetters(ctx, group, 0); err != nil {
					return failed(fmt.Errorf("list dead letters of %s on %s: %w", group, url, err))
				}
				if err := knownIfNone(ctx, ds, group, len(todo)); err != nil {
					return err // a mistyped group is not "0 replayed"
				}
			} else {
				d, err := findDead(ctx, ds, group, args[1])
				if err != nil {
					return err
				}
				todo = []transports.DeadLetter{d}
			}
			type replayed struct {
				ID      string `json:"id"`
				EventID string `json:"event_id"`
			}
			out := make([]replayed, 0, len(todo))
			last := time.Now()
			for i, d := range todo {
				if err := ds.ReplayDeadLetter(ctx, group, d.ID); err != nil {
					err = fmt.Errorf("replayed %d of %d dead letters of %s; %s: %w", i, len(todo), group, d.ID, err)
					if i > 0 && !errors.Is(err, context.Canceled) {
						// Stopped half-way: some were replayed (exit 1).
						return withCode(exitFailure, err)
					}
					return failed(err)
				}
				out = append(out, replayed{ID: d.ID, EventID: eventID(d)})
				if len(todo) > 1 && time.Since(last) >= time.Second {
					a.progressf("replayed %d/%d", i+1, len(todo))
					last = time.Now()
				}
			}
			if a.json {
				return writeJSON(a.stdout, struct {
					Group    string     `json:"group"`
					Count    int        `json:"count"`
					Replayed []replayed `json:"replayed"`
				}{group, len(out), out})
			}
			if !all {
				fmt.Fprintf(a.stdout, "Replayed dead letter %s (event %s) to group %s.\n", out[0].ID, out[0].EventID, group)
				return nil
			}
			fmt.Fprintf(a.stdout, "Replayed %d dead letters to group %s.\n", len(out), group)
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "replay every dead letter of the group")
	return cmd
}

func (a *app) deadPurgeCommand() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "purge GROUP --yes",
		Short: "Delete every dead letter of GROUP (needs --yes)",
		Args:  exactArgs("GROUP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			group := args[0]
			ds, done, url, err := a.deadStore(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			if !yes {
				list, err := ds.DeadLetters(cmd.Context(), group, 0)
				if err != nil {
					return failed(fmt.Errorf("list dead letters of %s on %s: %w", group, url, err))
				}
				if err := knownIfNone(cmd.Context(), ds, group, len(list)); err != nil {
					return err
				}
				return usagef("refusing to delete the %d dead letters of group %s without --yes", len(list), group)
			}
			n, err := ds.PurgeDeadLetters(cmd.Context(), group)
			if err != nil {
				return failed(fmt.Errorf("purge dead letters of %s on %s: %w", group, url, err))
			}
			if err := knownIfNone(cmd.Context(), ds, group, n); err != nil {
				return err // a mistyped group is not "0 purged"
			}
			if a.json {
				return writeJSON(a.stdout, struct {
					Group  string `json:"group"`
					Purged int    `json:"purged"`
				}{group, n})
			}
			fmt.Fprintf(a.stdout, "Purged %d dead letters of group %s.\n", n, group)
			return nil
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm the deletion")
	return cmd
}
