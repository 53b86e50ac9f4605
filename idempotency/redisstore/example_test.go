package redisstore_test

import (
	"log"

	"github.com/busline/busline/bus"
	_ "github.com/busline/busline/idempotency/redisstore" // registers the redis:// dedup store
	_ "github.com/busline/busline/transports/all"
)

// Dedup across processes: every process of a group shares the Redis dedup
// store, so an event redelivered to another process after a crash runs its
// handler once. Run it with a Redis at 127.0.0.1:6379.
func Example() {
	b, err := bus.New(bus.Config{
		Service:     "billing",
		Transport:   "redis://127.0.0.1:6379/0",
		Idempotency: "redis://127.0.0.1:6379/0",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
}
