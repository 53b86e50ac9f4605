package nats_test

import (
	"context"
	"log/slog"

	natsgo "github.com/nats-io/nats.go"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/transports/nats"
)

// A bus on NATS JetStream, chosen by URL: importing the package registers
// nats:// and tls://.
func Example() {
	b, err := bus.New(bus.Config{
		Service:   "price-monitor",
		Process:   "{hostname}",
		Transport: "nats://127.0.0.1:4222?maxlen=50000",
	})
	if err != nil {
		panic(err)
	}
	defer b.Close()
}

// New builds a transport on a connection made in code, for options a URL
// does not carry; the transport does not close it.
func ExampleNew() {
	nc, err := natsgo.Connect("nats://127.0.0.1:4222", natsgo.MaxReconnects(-1))
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	opts := nats.DefaultOptions()
	opts.Prefix = "billing"
	t, err := nats.New(context.Background(), nc, opts, slog.Default())
	if err != nil {
		panic(err)
	}
	defer t.Close()
}
