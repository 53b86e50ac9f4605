package transports

import (
	"context"
	"fmt"
	"slices"
)

// CheckGroupKnown returns an error wrapping ErrNotFound when the broker of
// t knows no consumer group named group: no owner record (RecordStore), no
// queue or stream group (Inspector). It says so only when every check t
// offers ran and found nothing: when t offers neither, or a check failed,
// the group is taken to exist and it returns nil (or the context's error
// when ctx ended). Tools call it after finding nothing for a group, to
// tell a typo from an empty group.
func CheckGroupKnown(ctx context.Context, t any, group string) error {
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
