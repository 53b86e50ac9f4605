package transports_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/busline/busline/transports"
	_ "github.com/busline/busline/transports/memory" // registers memory://
)

// Drivers register their URL scheme on import, like database/sql drivers;
// Open picks the driver by the URL's scheme.
func ExampleOpen() {
	ctx := context.Background()
	t, err := transports.Open(ctx, "memory://", transports.OpenOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer t.Close()
	_, inspects := t.(transports.Inspector)
	fmt.Println("memory inspects:", inspects)

	_, err = transports.Open(ctx, "kafka://127.0.0.1:9092", transports.OpenOptions{})
	fmt.Println(errors.Is(err, transports.ErrUnknownScheme))
	// Output:
	// memory inspects: true
	// true
}

// A transport that can keep records (group owners, schemas) says so by
// implementing RecordStore; ClaimRecord is an atomic claim-if-absent.
func ExampleRecordStore() {
	ctx := context.Background()
	t, _ := transports.Open(ctx, "memory://", transports.OpenOptions{})
	defer t.Close()
	rs, ok := t.(transports.RecordStore)
	if !ok {
		return
	}
	first, _ := rs.ClaimRecord(ctx, transports.RecordKindOwners, "billing-invoice", []byte("billing/invoice"))
	second, _ := rs.ClaimRecord(ctx, transports.RecordKindOwners, "billing-invoice", []byte("billing-eu/invoice"))
	fmt.Println(string(first), string(second))
	// Output: billing/invoice billing/invoice
}

func ExampleDefaultRetryAfter() {
	for _, attempt := range []int{1, 2, 3, 20} {
		fmt.Println(attempt, transports.DefaultRetryAfter(attempt))
	}
	// Output:
	// 1 1s
	// 2 2s
	// 3 4s
	// 20 5m0s
}
