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
	check, err := a.dataValidator(ctx, t, event, "--data")
	if err != nil {
		return err
	}
	return check(payload)
}

// dataValidator reads and compiles the schemas validateData checks
// against, once, and returns the check of one payload; what names the
// payloads in errors ("--data", "--lines").
func (a *app) dataValidator(ctx context.Context, t transports.Transport, event, what string) (func(payload []byte) error, error) {
	none := func([]byte) error { return nil }
	rs, ok := t.(transports.RecordStore)
	if !ok {
		a.progressf("note: the transport keeps no schemas; %s not validated", what)
		return none, nil
	}
	recs, err := schema.Published(ctx, rs)
	if err != nil && len(recs) == 0 {
		return nil, failed(fmt.Errorf("read the schemas of %s to validate %s (skip with --no-validate): %w", event, what, err))
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
		a.progressf("note: no service published a schema of %s; %s not validated", event, what)
		return none, nil
	}
	validators := make([]*schema.Validator, len(against))
	for i, r := range against {
		if validators[i], err = schema.Compile(r.Schema); err != nil {
			return nil, failed(fmt.Errorf("schema of %s published by %s: %w", event, r.Service, err))
		}
	}
	return func(payload []byte) error {
		for i, v := range validators {
			if err := v.Validate(payload); err != nil {
				var ve *schema.ValidationError
				if errors.As(err, &ve) {
					r := against[i]
					return withCode(exitFailure, fmt.Errorf("%s does not match the schema of %s that %s %s (%s): %w; skip the check with --no-validate",
						what, event, r.Service, roleVerb(r.Role), schema.ShortHash(r.Hash), err))
				}
				return failed(err)
			}
		}
		return nil
	}, nil
}

func roleVerb(r schema.Role) string {
	if r == schema.RoleListens {
		return "listens with"
	}
	return "fires with"
}
