package amqp_test

import (
	"context"
	"log"

	"github.com/busline/busline/bus"
	_ "github.com/busline/busline/transports/amqp" // registers amqp:// and amqps://
)

// Choose RabbitMQ by URL: one durable topic exchange, a durable queue per
// consumer group, publisher confirms. Run it with a RabbitMQ at
// 127.0.0.1:5672.
func Example() {
	b, err := bus.New(bus.Config{
		Service:   "price-monitor",
		Transport: "amqp://guest:guest@127.0.0.1:5672/?exchange=busline&queue_type=quorum",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	if err := b.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
}
