package idempotency_test

import (
	"context"
	"testing"

	"github.com/busline/busline/idempotency"
)

func TestHolderTokens(t *testing.T) {
	h := idempotency.Holder{Process: "billing-1", Run: "k3j9x0aa"}
	tok := idempotency.HolderToken(h, "0123abcd")
	if got, ok := idempotency.TokenHolder(tok); !ok || got != h {
		t.Fatalf("TokenHolder(%q) = %v, %v", tok, got, ok)
	}
	if idempotency.HolderToken(idempotency.Holder{}, "u") != "u" {
		t.Error("a token without a holder changed")
	}
	for _, bad := range []string{"", "0123", "p=;r=x;u", "p=a;r=;u", "p=a;u", "p=a;r=b"} {
		if _, ok := idempotency.TokenHolder(bad); ok {
			t.Errorf("TokenHolder(%q) accepted", bad)
		}
	}
	ctx := idempotency.WithHolder(context.Background(), idempotency.Holder{Process: "billing-1", Run: "new"})
	cases := map[string]bool{
		tok: true, // same process, earlier run
		idempotency.HolderToken(idempotency.Holder{Process: "billing-1", Run: "new"}, "x"): false, // this run
		idempotency.HolderToken(idempotency.Holder{Process: "billing-2", Run: "old"}, "x"): false, // another process
		"0123abcd": false,
	}
	for token, want := range cases {
		if got := idempotency.EarlierRun(ctx, token); got != want {
			t.Errorf("EarlierRun(%q) = %v, want %v", token, got, want)
		}
	}
	if idempotency.EarlierRun(context.Background(), tok) {
		t.Error("EarlierRun without a holder in the context")
	}
}
