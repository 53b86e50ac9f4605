package idempotency_test

import (
	"context"
	"testing"
	"time"

	"github.com/busline/busline/idempotency"
)

// Keys whose event ID is a UUID take the store's compact path; any other
// key takes the general one. Both must keep the same semantics, and keys
// that differ only in group, case or form must never collide.
func TestMemoryStoreKeyForms(t *testing.T) {
	s := idempotency.NewMemoryStore()
	ctx := context.Background()
	keys := []string{
		"g:01a214ae-52b0-7d2c-a98b-397719731461",
		"g:01A214AE-52B0-7D2C-A98B-397719731461", // upper case: another ID
		"h:01a214ae-52b0-7d2c-a98b-397719731461", // another group
		"g:01a214ae52b07d2ca98b397719731461",     // no dashes: another ID
		"g:not-a-uuid",
		"g:",
		"g:01a214ae-52b0-7d2c-a98b-39771973146",   // one digit short
		"g:01a214ae-52b0-7d2c-a98b-397719731461x", // one too many
		"no-colon",
	}
	leases := map[string]idempotency.Lease{}
	for _, k := range keys {
		st, l, err := s.Begin(ctx, k, time.Minute)
		if err != nil || st != idempotency.Fresh {
			t.Fatalf("Begin(%q) = %v, %v; want Fresh (a collision with an earlier key?)", k, st, err)
		}
		leases[k] = l
	}
	for i, k := range keys {
		if st, _, _ := s.Begin(ctx, k, time.Minute); st != idempotency.Held {
			t.Errorf("second Begin(%q) = %v, want Held", k, st)
		}
		if i%2 == 0 {
			if err := s.Commit(ctx, leases[k], time.Hour); err != nil {
				t.Fatalf("Commit(%q) = %v", k, err)
			}
		} else if err := s.Abort(ctx, leases[k]); err != nil {
			t.Fatalf("Abort(%q) = %v", k, err)
		}
	}
	for i, k := range keys {
		want := idempotency.Done
		if i%2 == 1 {
			want = idempotency.Fresh
		}
		if st, _, _ := s.Begin(ctx, k, time.Minute); st != want {
			t.Errorf("Begin(%q) after %s = %v, want %v", k, map[bool]string{true: "commit", false: "abort"}[i%2 == 0], st, want)
		}
	}
	if got := s.Len(); got != len(keys) {
		t.Errorf("Len = %d, want %d", got, len(keys))
	}
}
