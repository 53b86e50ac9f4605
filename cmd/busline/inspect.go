package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/busline/busline/transports"
)

func (a *app) inspectCommand() *cobra.Command {
	var opts transports.InspectOptions
	cmd := &cobra.Command{
		Use:   "inspect",
		Short: "Show event streams, consumer groups, consumers, pending, lag and dead letters",
		Long: `inspect shows what the broker holds: every event stream with its length; every
consumer group with its consumers, pending (delivered, not acknowledged) events,
lag (events not yet delivered), the age of its oldest pending event and its dead
letters; and each consumer of each group.

Redis: XINFO, XPENDING, XLEN under the key prefix. AMQP cannot list queues: name
the groups with --group; it reports ready messages (lag), live consumers and dead
letters, not pending deliveries. memory:// only sees brokers of this process.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, e := range opts.Events {
				if _, _, err := checkEvent(e); err != nil {
					return err
				}
			}
			t, url, err := a.openTransport(cmd.Context())
			if err != nil {
				return err
			}
			defer t.Close()
			in, ok := t.(transports.Inspector)
			if !ok {
				return withCode(exitUnsupported, fmt.Errorf("%w: the %s transport cannot be inspected", transports.ErrUnsupported, scheme(url)))
			}
			res, err := in.Inspect(cmd.Context(), opts)
			if err != nil {
				return failed(fmt.Errorf("inspect %s: %w", url, err))
			}
			sched, note, err := inspectScheduled(cmd.Context(), t, opts.Events)
			if err != nil {
				return failed(fmt.Errorf("inspect %s: %w", url, err))
			}
			if note != "" {
				res.Notes = append(res.Notes, note)
			}
			if isMemory(url) {
				res.Notes = append(res.Notes, memoryNote)
			}
			if a.json {
				doc := inspectJSON(url, res)
				if note == "" { // else not counted: null
					doc.Scheduled = scheduledJSON(sched)
				}
				return writeJSON(a.stdout, doc)
			}
			return a.printInspection(url, res, sched)
		},
	}
	cmd.Flags().StringSliceVar(&opts.Events, "event", nil, "only these events (repeatable, or comma-separated)")
	cmd.Flags().StringSliceVar(&opts.Groups, "group", nil, "only these consumer groups (repeatable; AMQP: the groups to look at)")
	return cmd
}

func scheme(url string) string {
	s, _, _ := strings.Cut(url, ":")
	return s
}

func (a *app) printInspection(url string, res *transports.Inspection, sched []transports.ScheduledInfo) error {
	fmt.Fprintf(a.stdout, "Transport: %s\n\n", url)
	if len(res.Streams) > 0 {
		t := newTable(a.stdout, "EVENT", "LENGTH", "GROUPS", "LAST EVENT")
		for _, s := range res.Streams {
			t.row(s.Event, strconv.FormatInt(s.Length, 10), strconv.Itoa(s.Groups), stamp(s.LastEntryAt))
		}
		if err := t.flush(); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(a.stdout, "No event streams.")
	}
	fmt.Fprintln(a.stdout)
	if len(res.Groups) > 0 {
		t := newTable(a.stdout, "GROUP", "EVENT", "CONSUMERS", "PENDING", "LAG", "OLDEST PENDING", "DEAD")
		for _, g := range res.Groups {
			t.row(g.Group, orDash(g.Event), strconv.Itoa(g.Consumers), count(g.Pending), count(g.Lag), age(g.OldestPending), strconv.FormatInt(g.DeadLetters, 10))
		}
		if err := t.flush(); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(a.stdout, "No consumer groups.")
	}
	members := 0
	for _, g := range res.Groups {
		members += len(g.Members)
	}
	if members > 0 {
		fmt.Fprintln(a.stdout)
		t := newTable(a.stdout, "GROUP", "CONSUMER", "PENDING", "IDLE", "LIVE")
		for _, g := range res.Groups {
			for _, m := range g.Members {
				live := "-"
				if m.Live {
					live = "yes"
				}
				t.row(g.Group, m.Name, strconv.FormatInt(m.Pending, 10), age(m.Idle), live)
			}
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if err := printScheduled(a.stdout, sched); err != nil {
		return err
	}
	if len(res.Notes) > 0 {
		fmt.Fprintln(a.stdout)
		for _, n := range res.Notes {
			fmt.Fprintf(a.stdout, "Note: %s\n", n)
		}
	}
	return nil
}

// The JSON document of inspect. Counts and ages the broker does not report
// are null; the groups are transports.GroupDoc, the same as the dashboard's.
type (
	inspectDoc struct {
		Transport string                `json:"transport"`
		Streams   []streamDoc           `json:"streams"`
		Groups    []transports.GroupDoc `json:"groups"`
		Notes     []string              `json:"notes"`
		// Scheduled lists, per event name, the events waiting for their
		// due time (fired WithDelay or WithDeliverAt); null on a transport
		// that does not count them (AMQP).
		Scheduled []scheduledDoc `json:"scheduled"`
	}
	streamDoc struct {
		Event       string  `json:"event"`
		Key         string  `json:"key"`
		Length      int64   `json:"length"`
		Groups      int     `json:"groups"`
		LastEventAt *string `json:"last_event_at"`
	}
)

func inspectJSON(url string, res *transports.Inspection) inspectDoc {
	doc := inspectDoc{Transport: url, Streams: []streamDoc{}, Groups: []transports.GroupDoc{}, Notes: res.Notes}
	if doc.Notes == nil {
		doc.Notes = []string{}
	}
	for _, s := range res.Streams {
		doc.Streams = append(doc.Streams, streamDoc{Event: s.Event, Key: s.Key, Length: s.Length, Groups: s.Groups, LastEventAt: jsonTime(s.LastEntryAt)})
	}
	for _, g := range res.Groups {
		doc.Groups = append(doc.Groups, transports.NewGroupDoc(g, 0))
	}
	return doc
}
