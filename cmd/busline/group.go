package main

import (
	"context"
	"fmt"
	"slices"

	"github.com/busline/busline/transports"
)

// groupExists returns an error wrapping transports.ErrNotFound when the
// broker knows no consumer group named group: no owner record, no queue
// or stream group, no dead letters. It says so only when every check the
// transport offers (records, inspection) ran and found nothing: when it
// can tell neither, or a check failed, the group is taken to exist (an
// interrupted check returns the context's error).
func groupExists(ctx context.Context, t any, group string) error {
	checked := false
	if rs, ok := t.(transports.RecordStore); ok {
		owners, err := rs.Records(ctx, transports.RecordKindOwners)
		if err != nil {
			return ctx.Err()
		}
		if _, ok := owners[group]; ok {
			return nil
		}
		checked = true
	}
	if ins, ok := t.(transports.Inspector); ok {
		in, err := ins.Inspect(ctx, transports.InspectOptions{Groups: []string{group}})
		if err != nil {
			return ctx.Err()
		}
		if slices.ContainsFunc(in.Groups, func(g transports.GroupInfo) bool { return g.Group == group }) {
			return nil
		}
		checked = true
	}
	if !checked {
		return nil
	}
	return fmt.Errorf("%w: no consumer group %q on this broker (busline inspect lists the groups)", transports.ErrNotFound, group)
}

// knownIfNone is what a dead command does after finding n dead letters of
// group: none in a group the broker does not know is a not-found error
// (exit 3), not "0 listed/replayed/purged".
func knownIfNone(ctx context.Context, t any, group string, n int) error {
	if n > 0 {
		return nil
	}
	if err := groupExists(ctx, t, group); err != nil {
		return failed(err)
	}
	return nil
}
