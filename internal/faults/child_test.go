package faults

import (
	"context"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/idempotency/pgstore"      // postgres:// idempotency, Tx
	_ "github.com/busline/busline/idempotency/redisstore" // redis:// idempotency
	"github.com/busline/busline/internal/procs"
	_ "github.com/busline/busline/transports/all"
)

// The listener processes are the test binary re-executed with
// procs.EnvChild (see internal/procs): envChild, the payload and event
// they listen to, and their configuration are procs' own.
const envChild = procs.EnvChild

type tick = procs.Tick

var ticked = procs.Ticked

type childSpec = procs.Spec

// runChild is the main of a listener process; a handler of a spec with
// Effects inserts its effect into that table through pgstore.Tx.
func runChild(raw string) int {
	return procs.RunChild(raw, func(ctx context.Context, s procs.Spec, d bus.Delivery[tick]) error {
		_, err := pgstore.Tx(ctx).Exec(ctx, "INSERT INTO "+s.Effects+" (event_id, process) VALUES ($1, $2)", d.ID, s.Process)
		return err
	})
}
