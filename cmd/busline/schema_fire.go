package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/busline/busline/schema"
	"github.com/busline/busline/transports"
)

// validateData checks the payload of `busline fire` against the schemas
// published for event: every listener's schema (the payload must suit
// each service that listens), or, when no service listens, every firer's.
// Nothing published, or a transport that keeps no records, is not an
// error: the payload goes out unchecked, with a note on stderr.
func (a *app) validateData(ctx context.Context, t transports.Transport, event string, payload []byte) error {
	rs, ok := t.(transports.RecordStore)
	if !ok {
		a.progressf("note: the transport keeps no schemas; --data not validated")
		return nil
	}
	recs, err := schema.Published(ctx, rs)
	if err != nil && len(recs) == 0 {
		return failed(fmt.Errorf("read the schemas of %s to validate --data (skip with --no-validate): %w", event, err))
	}
	var listens, fires []schema.Record
	for _, r := range recs {
		switch {
		case r.Event != event:
		case r.Role == schema.RoleListens:
			listens = append(listens, r)
		default:
			fires = append(fires, r)
		}
	}
	against := listens
	if len(against) == 0 {
		against = fires
	}
	if len(against) == 0 {
		a.progressf("note: no service published a schema of %s; --data not validated", event)
		return nil
	}
	for _, r := range against {
		v, err := schema.Compile(r.Schema)
		if err != nil {
			return failed(fmt.Errorf("schema of %s published by %s: %w", event, r.Service, err))
		}
		if err := v.Validate(payload); err != nil {
			var ve *schema.ValidationError
			if errors.As(err, &ve) {
				return withCode(exitFailure, fmt.Errorf("--data does not match the schema of %s that %s %s (%s): %w; skip the check with --no-validate",
					event, r.Service, roleVerb(r.Role), schema.ShortHash(r.Hash), err))
			}
			return failed(err)
		}
	}
	return nil
}

func roleVerb(r schema.Role) string {
	if r == schema.RoleListens {
		return "listens with"
	}
	return "fires with"
}
