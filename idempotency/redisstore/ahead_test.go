package redisstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/idempotency"
	"github.com/busline/busline/idempotency/redisstore"
)

// A claim a transport's read took ahead (here written by hand, as the
// read's script does) is adopted by the first Begin of its key: Fresh,
// with the read's token and no new write; a claim nobody adopted is
// released (deleted), and releasing an adopted one changes nothing.
func TestClaimTakenAheadIsAdoptedOrReleased(t *testing.T) {
	c := client(t)
	p := prefix(t, c)
	s := redisstore.New(c, redisstore.Options{Prefix: p})
	ctx := context.Background()
	if _, ok := s.PlanAhead("g"); ok {
		t.Fatal("PlanAhead before any middleware announced the group")
	}
	holder := idempotency.Holder{Process: "p1", Run: "r1"}
	s.ExpectBegins("g", holder, time.Minute)
	plan, ok := s.PlanAhead("g")
	if !ok || plan.KeyPrefix != p+"g:" || plan.Lease != time.Minute {
		t.Fatalf("PlanAhead = %+v, %v", plan, ok)
	}
	base := plan.TokenBase()
	tokens := []string{redisstore.ClaimToken(base, 1), redisstore.ClaimToken(base, 2)}
	if tokens[0] == tokens[1] || !strings.HasPrefix(tokens[0], "p=p1;r=r1;") || plan.TokenBase() == base {
		t.Fatalf("tokens %q (base %q): want two distinct tokens recording the holder, and a new base for each read", tokens, base)
	}
	start := time.Now()
	for i, id := range []string{"e1", "e2"} {
		if err := c.Set(ctx, plan.KeyPrefix+id, tokens[i], time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	k1 := plan.Claimed("e1", tokens[0], start)
	k2 := plan.Claimed("e2", tokens[1], start)

	hctx := idempotency.WithHolder(ctx, holder)
	st, l, err := s.Begin(hctx, "g:e1", time.Minute)
	if err != nil || st != idempotency.Fresh || l.Token != tokens[0] || l.Expires != start.Add(time.Minute) {
		t.Fatalf("Begin of a key claimed ahead = %v, %+v, %v; want Fresh with the read's token", st, l, err)
	}
	if err := s.Release(ctx, []redisstore.AheadClaim{k1})[0]; err != nil {
		t.Fatal(err)
	}
	if v := c.Get(ctx, k1.RedisKey).Val(); v != tokens[0] {
		t.Fatalf("Release of an adopted claim changed the key to %q", v)
	}
	if err := s.Commit(ctx, l, time.Hour); err != nil {
		t.Fatalf("Commit of the adopted lease: %v", err)
	}
	// A second Begin of e1 is a duplicate: nothing is adopted twice.
	if st, _, err := s.Begin(hctx, "g:e1", time.Minute); err != nil || st != idempotency.Done {
		t.Fatalf("Begin after the commit = %v, %v; want Done", st, err)
	}

	if err := s.Release(ctx, []redisstore.AheadClaim{{RedisKey: k2.RedisKey, Token: "another token"}})[0]; err != nil {
		t.Fatal(err)
	}
	if v := c.Get(ctx, k2.RedisKey).Val(); v != tokens[1] {
		t.Fatalf("Release with a wrong token changed the key to %q", v)
	}
	if err := s.Release(ctx, []redisstore.AheadClaim{k2})[0]; err != nil {
		t.Fatal(err)
	}
	if n := c.Exists(ctx, k2.RedisKey).Val(); n != 0 {
		t.Fatal("a claim nobody adopted is still held after Release")
	}
	// Released: the next Begin claims the key itself.
	if st, l, err := s.Begin(hctx, "g:e2", time.Minute); err != nil || st != idempotency.Fresh || l.Token == tokens[1] {
		t.Fatalf("Begin after Release = %v, %+v, %v; want a fresh claim of its own", st, l, err)
	}
}

// A read whose reply was lost may have claimed keys with any of its
// tokens: Begin in this store takes such a claim over at once, as it
// does a lost Begin's, while another store still finds it held.
func TestClaimOfALostReadIsTakenOver(t *testing.T) {
	c, s, other, plan := twoStoresPlanning(t, time.Hour)
	ctx := context.Background()
	base := plan.TokenBase()
	tokens := []string{redisstore.ClaimToken(base, 1), redisstore.ClaimToken(base, 2), redisstore.ClaimToken(base, 3)}
	if err := c.Set(ctx, plan.KeyPrefix+"e1", tokens[1], time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	plan.Unknown(base, 3)
	if st, _, err := other.Begin(ctx, "g:e1", time.Hour); err != nil || st != idempotency.Held {
		t.Fatalf("Begin in another store = %v, %v; want Held", st, err)
	}
	st, l, err := s.Begin(ctx, "g:e1", time.Hour)
	if err != nil || st != idempotency.Fresh || l.Token == tokens[1] {
		t.Fatalf("Begin in the store whose read was lost = %v, %+v, %v; want Fresh at once", st, l, err)
	}
}

// A claim with less than half its lease left is not adopted: Begin claims
// the key the usual way. It takes the lease over when the key still holds
// the read's token, and finds the key held when another holder took it
// after the read's lease ran out.
func TestClaimTakenAheadNearItsExpiryIsNotAdopted(t *testing.T) {
	c, s, other, plan := twoStoresPlanning(t, time.Minute)
	ctx := context.Background()
	base := plan.TokenBase()
	tokens := []string{redisstore.ClaimToken(base, 1), redisstore.ClaimToken(base, 2)}
	longAgo := time.Now().Add(-45 * time.Second) // a quarter of the lease left
	if err := c.Set(ctx, plan.KeyPrefix+"e1", tokens[0], 15*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	plan.Claimed("e1", tokens[0], longAgo)
	st, l, err := s.Begin(ctx, "g:e1", time.Minute)
	if err != nil || st != idempotency.Fresh || l.Token == tokens[0] || time.Until(l.Expires) < 50*time.Second {
		t.Fatalf("Begin of a claim near its expiry = %v, %+v, %v; want a fresh lease of its own", st, l, err)
	}

	// e2: the read's lease ran out and another store took the key.
	plan.Claimed("e2", tokens[1], time.Now().Add(-2*time.Minute))
	if st, _, err := other.Begin(ctx, "g:e2", time.Minute); err != nil || st != idempotency.Fresh {
		t.Fatalf("Begin in the other store = %v, %v", st, err)
	}
	if st, _, err := s.Begin(ctx, "g:e2", time.Minute); err != nil || st != idempotency.Held {
		t.Fatalf("Begin of an expired claim another holder took = %v, %v; want Held", st, err)
	}
}

// twoStoresPlanning returns two stores on one key prefix of the test's own
// (two processes) and the plan of the first for group "g", as after its
// middleware announced the group with a lease of lease.
func twoStoresPlanning(t *testing.T, lease time.Duration) (*redis.Client, *redisstore.Store, *redisstore.Store, redisstore.AheadPlan) {
	t.Helper()
	c := client(t)
	p := prefix(t, c)
	s := redisstore.New(c, redisstore.Options{Prefix: p})
	other := redisstore.New(c, redisstore.Options{Prefix: p})
	s.ExpectBegins("g", idempotency.Holder{}, lease)
	plan, ok := s.PlanAhead("g")
	if !ok {
		t.Fatal("no plan after ExpectBegins")
	}
	return c, s, other, plan
}
