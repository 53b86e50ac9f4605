package idempotency_test

import (
	"testing"

	"github.com/busline/busline/idempotency/storetest"
)

func TestMemoryStoreConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		URL:    func(testing.TB) string { return "memory://" },
		Shared: false,
	})
}
