package redisstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/busline/busline/idempotency"
	"github.com/busline/busline/idempotency/redisstore"
)

// A process restarted under the same name takes over the lease its dead
// earlier run held, at once; any other holder still finds it held.
func TestRestartedProcessTakesOverItsOwnLease(t *testing.T) {
	c := client(t)
	p := prefix(t, c)
	s := redisstore.New(c, redisstore.Options{Prefix: p})
	as := func(process, run string) context.Context {
		return idempotency.WithHolder(context.Background(), idempotency.Holder{Process: process, Run: run})
	}
	st, dead, err := s.Begin(as("billing-1", "run-a"), "g:e1", time.Hour)
	if err != nil || st != idempotency.Fresh {
		t.Fatalf("first Begin = %v, %v", st, err)
	}
	for _, other := range []context.Context{as("billing-2", "run-x"), as("billing-1", "run-a"), context.Background()} {
		if st, _, err := s.Begin(other, "g:e1", time.Hour); err != nil || st != idempotency.Held {
			t.Fatalf("Begin by another holder = %v, %v; want Held", st, err)
		}
	}
	st, l, err := s.Begin(as("billing-1", "run-b"), "g:e1", time.Hour)
	if err != nil || st != idempotency.Fresh {
		t.Fatalf("Begin by the restarted process = %v, %v; want Fresh at once", st, err)
	}
	if err := s.Commit(context.Background(), dead, time.Hour); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("late commit of the dead run = %v, want ErrLeaseLost", err)
	}
	if err := s.Commit(context.Background(), l, time.Hour); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := s.Begin(as("billing-1", "run-c"), "g:e1", time.Hour); st != idempotency.Done {
		t.Fatalf("Begin after commit = %v, want Done", st)
	}
}

func TestExtendKeepsOnlyOwnLease(t *testing.T) {
	c := client(t)
	p := prefix(t, c)
	s := redisstore.New(c, redisstore.Options{Prefix: p})
	ctx := context.Background()
	_, l, err := s.Begin(ctx, "g:e1", 5*time.Second) // shorter than Extend's hour; no expiry needed
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Extend(ctx, l, time.Hour); err != nil {
		t.Fatalf("Extend = %v", err)
	}
	if ttl := c.PTTL(ctx, p+"g:e1").Val(); ttl < 59*time.Minute {
		t.Fatalf("TTL after Extend = %s, want about an hour", ttl)
	}
	if err := s.Commit(ctx, l, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.Extend(ctx, l, time.Hour); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("Extend after commit = %v, want ErrLeaseLost", err)
	}
}
