package main

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/busline/busline/transports"
)

// completeTimeout bounds asking the broker for names while the shell waits.
const completeTimeout = 3 * time.Second

// addCompletions makes the shell completion (busline completion bash|zsh|
// fish|powershell, from cobra) complete consumer groups and event names
// from the broker: the GROUP of the dead and group commands, the EVENT of tail, fire
// and schema show, and the --group and --event flags of inspect.
func (a *app) addCompletions(root *cobra.Command) {
	for _, c := range root.Commands() {
		switch c.Name() {
		case "tail", "fire":
			c.ValidArgsFunction = a.completeFirst(a.eventNames)
		case "dead", "group":
			for _, d := range c.Commands() {
				d.ValidArgsFunction = a.completeFirst(a.groupNames)
			}
		case "schema":
			for _, d := range c.Commands() {
				if d.Name() == "show" {
					d.ValidArgsFunction = a.completeFirst(a.eventNames)
				}
			}
		case "inspect":
			_ = c.RegisterFlagCompletionFunc("event", a.completeAny(a.eventNames))
			_ = c.RegisterFlagCompletionFunc("group", a.completeAny(a.groupNames))
		}
	}
}

type namesFunc func(ctx context.Context) []string

// completeFirst completes the first positional argument only.
func (a *app) completeFirst(names namesFunc) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return a.completeAny(names)(cmd, args, toComplete)
	}
}

func (a *app) completeAny(names namesFunc) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		ctx, cancel := context.WithTimeout(cmd.Context(), completeTimeout)
		defer cancel()
		var out []cobra.Completion
		for _, n := range names(ctx) {
			if strings.HasPrefix(n, toComplete) {
				out = append(out, n)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// inspectNames opens the configured transport quietly and returns what
// fn picks from it; nothing when the broker cannot be reached.
func (a *app) inspectNames(ctx context.Context, fn func(transports.Transport, *transports.Inspection) []string) []string {
	raw, err := a.transportURL()
	if err != nil {
		return nil
	}
	t, err := transports.Open(ctx, raw, toolOptions("busline", discardLogger()))
	if err != nil {
		return nil
	}
	defer t.Close()
	var in *transports.Inspection
	if ins, ok := t.(transports.Inspector); ok {
		in, _ = ins.Inspect(ctx, transports.InspectOptions{})
	}
	if in == nil {
		in = &transports.Inspection{}
	}
	names := fn(t, in)
	slices.Sort(names)
	return slices.Compact(names)
}

// eventNames are the events the broker holds streams of.
func (a *app) eventNames(ctx context.Context) []string {
	return a.inspectNames(ctx, func(_ transports.Transport, in *transports.Inspection) []string {
		var out []string
		for _, s := range in.Streams {
			out = append(out, s.Event)
		}
		for _, g := range in.Groups {
			if g.Event != "" {
				out = append(out, g.Event)
			}
		}
		return out
	})
}

// groupNames are the consumer groups the broker reports, and those with a
// recorded owner (which AMQP, unable to list its queues, still knows).
func (a *app) groupNames(ctx context.Context) []string {
	return a.inspectNames(ctx, func(t transports.Transport, in *transports.Inspection) []string {
		var out []string
		for _, g := range in.Groups {
			out = append(out, g.Group)
		}
		if rs, ok := t.(transports.RecordStore); ok {
			if owners, err := rs.Records(ctx, transports.RecordKindOwners); err == nil {
				for g := range owners {
					out = append(out, g)
				}
			}
		}
		return out
	})
}
