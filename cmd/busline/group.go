package main

import (
	"context"
	"fmt"
	"slices"

	"github.com/busline/busline/transports"
)

// groupExists returns an error wrapping transports.ErrNotFound when the
// broker knows no consumer group named group: no owner record, no queue
// or stream group, no dead letters. When the transport can tell neither
// (no records, no inspection), the group is taken to exist.
func groupExists(ctx context.Context, t any, group string) error {
	known := false
	if rs, ok := t.(transports.RecordStore); ok {
		owners, err := rs.Records(ctx, transports.RecordKindOwners)
		if err == nil {
			if _, ok := owners[group]; ok {
				return nil
			}
			known = true
		}
	}
	if ins, ok := t.(transports.Inspector); ok {
		in, err := ins.Inspect(ctx, transports.InspectOptions{Groups: []string{group}})
		if err == nil {
			if slices.ContainsFunc(in.Groups, func(g transports.GroupInfo) bool { return g.Group == group }) {
				return nil
			}
			known = true
		}
	}
	if !known {
		return nil
	}
	return fmt.Errorf("%w: no consumer group %q on this broker (busline inspect lists the groups)", transports.ErrNotFound, group)
}
