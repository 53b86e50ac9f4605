package idempotency_test

import (
	"context"
	"fmt"
	"time"

	"github.com/busline/busline/idempotency"
)

// The life of a dedup key: the first Begin gets a fresh lease, a duplicate
// while the lease is live sees Held, and after Commit every duplicate sees
// Done and is acknowledged without running the handler.
func ExampleStore() {
	ctx := context.Background()
	store := idempotency.NewMemoryStore()
	defer store.Close()
	key := idempotency.Key("billing-invoice", "0193b0a4-5f1e-7c3a-9d2b-4e6f8a1c2d3e")

	state, lease, _ := store.Begin(ctx, key, time.Minute)
	fmt.Println("first:", state)
	dup, _, _ := store.Begin(ctx, key, time.Minute)
	fmt.Println("while handling:", dup)
	_ = store.Commit(ctx, lease, 7*24*time.Hour)
	after, _, _ := store.Begin(ctx, key, time.Minute)
	fmt.Println("after commit:", after)
	// Output:
	// first: fresh
	// while handling: held
	// after commit: done
}

func ExampleKey() {
	fmt.Println(idempotency.Key("billing-invoice", "0193b0a4-5f1e-7c3a-9d2b-4e6f8a1c2d3e"))
	// Output: billing-invoice:0193b0a4-5f1e-7c3a-9d2b-4e6f8a1c2d3e
}
