package transports

import (
	"context"
	"fmt"
	"slices"
)

// GroupFinder is implemented by a transport that can tell, cheaply and
// without writing anything to the broker, that a consumer group exists
// (an AMQP queue that a passive declaration finds). CheckGroupKnown asks
// it first. Found false is not proof of absence: the other checks still
// run.
type GroupFinder interface {
	FindGroup(ctx context.Context, group string) (found bool, err error)
}

// CheckGroupKnown returns an error wrapping ErrNotFound when the broker of
// t knows no consumer group named group: no group a GroupFinder finds, no
// owner record (RecordStore), no queue or stream group (Inspector). It
// says so only when every check t offers ran and found nothing: when t
// offers none, or a check failed, the group is taken to exist and it
// returns nil (or the context's error when ctx ended). Tools call it
// after finding nothing for a group, to tell a typo from an empty group.
func CheckGroupKnown(ctx context.Context, t any, group string) error {
	if gf, ok := t.(GroupFinder); ok {
		found, err := gf.FindGroup(ctx, group)
		if found {
			return nil
		}
		if err != nil {
			return ctx.Err()
		}
	}
	checked := false
	if rs, ok := t.(RecordStore); ok {
		owners, err := rs.Records(ctx, RecordKindOwners)
		if err != nil {
			return ctx.Err()
		}
		if _, ok := owners[group]; ok {
			return nil
		}
		checked = true
	}
	if ins, ok := t.(Inspector); ok {
		in, err := ins.Inspect(ctx, InspectOptions{Groups: []string{group}})
		if err != nil {
			return ctx.Err()
		}
		if slices.ContainsFunc(in.Groups, func(g GroupInfo) bool { return g.Group == group }) {
			return nil
		}
		checked = true
	}
	if !checked {
		return nil
	}
	return fmt.Errorf("%w: no consumer group %q on this broker", ErrNotFound, group)
}
