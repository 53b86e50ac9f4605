package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/busline/busline/transports"
)

// knownIfNone is what a dead command does after finding n dead letters of
// group: none in a group the broker does not know is a not-found error
// (exit 3, transports.CheckGroupKnown), not "0 listed/replayed/purged".
func knownIfNone(ctx context.Context, t any, group string, n int) error {
	if n > 0 {
		return nil
	}
	if err := transports.CheckGroupKnown(ctx, t, group); err != nil {
		return failed(fmt.Errorf("%w (busline inspect lists the groups)", err))
	}
	return nil
}

func (a *app) groupCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "Retire a consumer group whose listener was renamed or removed",
		Long: `group works on one consumer group ("{service}-{listener}") as a whole.
A listener renamed or removed leaves its group on the broker, which keeps
every event fired since for it: a RabbitMQ queue grows without bound, a
Redis or NATS group's lag grows for good. "group remove" retires it.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usagef("group needs a subcommand: remove")
		},
	}
	cmd.AddCommand(a.groupRemoveCommand())
	return cmd
}

func (a *app) groupRemoveCommand() *cobra.Command {
	var yes, force, dead bool
	cmd := &cobra.Command{
		Use:   "remove GROUP --yes",
		Short: "Delete GROUP from the broker, with the events it has not acknowledged (needs --yes)",
		Long: `remove deletes GROUP from the broker: its place on the stream of every event
it reads, with the events it holds and has not acknowledged (Redis consumer
groups, NATS consumers, the RabbitMQ queue and its delay queues), and its
owner record, so that the name can be used again, and on Redis its records
in the transport's own dedup store (the default one), so that a group made
again under the name runs again the events it reads (a listener started
later reads from where its "since" says: new events only by default). Its dead letters are kept
(an empty RabbitMQ dead-letter queue goes) unless --dead-letters.

A group a process still reads is refused (exit 1): a consumer attached
(RabbitMQ), pull requests waiting, messages out or a delivery within the
last minute (NATS), a consumer that took an event within the last minute,
an open subscription (its liveness key) or a process holding its name in
the Redis dedup store (Redis). Stop the listener first. --force removes it anyway, and a bus still listening makes
the group again (Redis, NATS: from the start of the stream, so the events
the stream holds run again). Exit 3 when the broker knows no such group.`,
		Args: exactArgs("GROUP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			group := args[0]
			if !yes {
				return usagef("refusing to remove group %s and the events it holds without --yes", group)
			}
			t, url, err := a.openTransport(cmd.Context())
			if err != nil {
				return err
			}
			defer func() { _ = t.Close() }()
			gr, ok := t.(transports.GroupRemover)
			if !ok {
				return withCode(exitUnsupported, fmt.Errorf("%w: the %s transport cannot remove consumer groups", transports.ErrUnsupported, scheme(url)))
			}
			err = gr.RemoveGroup(cmd.Context(), group, transports.RemoveGroupOptions{DeadLetters: dead, Force: force})
			if err != nil {
				if errors.Is(err, transports.ErrNotFound) {
					return failed(fmt.Errorf("%w (busline inspect lists the groups)", err))
				}
				if errors.Is(err, transports.ErrGroupInUse) {
					return failed(fmt.Errorf("remove group %s on %s: %w (stop its listeners and try again in a minute, or --force: a bus still listening makes the group again)", group, url, err))
				}
				return failed(fmt.Errorf("remove group %s on %s: %w", group, url, err))
			}
			if a.json {
				return writeJSON(a.stdout, struct {
					Group       string `json:"group"`
					Removed     bool   `json:"removed"`
					DeadLetters bool   `json:"dead_letters_removed"`
				}{group, true, dead})
			}
			fmt.Fprintf(a.stdout, "Removed group %s.\n", group)
			return nil
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm the removal")
	cmd.Flags().BoolVar(&force, "force", false, "remove the group even while a process reads it")
	cmd.Flags().BoolVar(&dead, "dead-letters", false, "remove the group's dead letters too")
	return cmd
}
