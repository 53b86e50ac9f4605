package redisstream_test

import (
	"context"
	"log"

	"github.com/busline/busline/bus"
	_ "github.com/busline/busline/transports/redisstream" // registers redis:// and rediss://
)

// Choose Redis Streams by URL. Query options tune the transport (see
// Options): a key prefix, trimming per event. Run it with a Redis at
// 127.0.0.1:6379.
func Example() {
	b, err := bus.New(bus.Config{
		Service:   "price-monitor",
		Process:   "{hostname}", // a stable name: a restart takes its own pending events back at once
		Transport: "redis://127.0.0.1:6379/0?prefix=busline:&maxlen=100000",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	if err := b.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
}
