package main

import (
	"context"
	"fmt"

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
