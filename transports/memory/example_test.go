package memory_test

import (
	"context"
	"fmt"

	"github.com/busline/busline/bus"
	_ "github.com/busline/busline/transports/memory"
)

type Tick struct {
	N int `json:"n"`
}

var Ticked = bus.NewEvent[Tick]("clock", "ticked")

// memory://NAME is one broker shared by every bus of the process that
// opens the same name: here two "processes" of one service share the
// work of their group, as they would on Redis.
func Example() {
	ctx := context.Background()
	got := make(chan string, 10)
	var buses []*bus.Bus
	for _, process := range []string{"p1", "p2"} {
		b, err := bus.New(bus.Config{Service: "clock-watch", Process: process, Transport: "memory://example-shared"})
		if err != nil {
			fmt.Println(err)
			return
		}
		_ = bus.Listen(b, Ticked, "log", func(ctx context.Context, d bus.Delivery[Tick]) error {
			got <- d.ID
			return nil
		})
		if err := b.Start(ctx); err != nil {
			fmt.Println(err)
			return
		}
		defer b.Close()
		buses = append(buses, b)
	}
	for i := range 10 {
		if _, err := bus.Fire(ctx, buses[0], Ticked, Tick{N: i}); err != nil {
			fmt.Println(err)
			return
		}
	}
	seen := map[string]bool{}
	for range 10 {
		seen[<-got] = true
	}
	fmt.Println(len(seen), "distinct events handled once by the group")
	// Output: 10 distinct events handled once by the group
}
