// Command multi-process shows two processes of one service sharing a
// listener's events, and a process restarted under the same name taking
// back the event it held when it died.
//
//	go run ./examples/multi-process
//
// Both "processes" run in this program on one shared broker
// (memory://multi-process-demo); set BUSLINE_TRANSPORT to run them on
// Redis. Separate OS processes work the same way with the same URL.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/busline/busline/bus"
	_ "github.com/busline/busline/transports/all"
)

// OrderPlaced is the payload of store.orders.order_placed.
type OrderPlaced struct {
	Order int `json:"order"`
}

var orderPlaced = bus.NewEvent[OrderPlaced]("store.orders", "order_placed")

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func transportURL() string {
	if u := os.Getenv("BUSLINE_TRANSPORT"); u != "" {
		return u
	}
	return "memory://multi-process-demo"
}

// process starts one process of service "billing" with listener "invoice".
func process(name string, shutdown time.Duration, h bus.Handler[OrderPlaced]) (*bus.Bus, error) {
	b, err := bus.New(bus.Config{
		Service: "billing", Process: name, Transport: transportURL(),
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		ShutdownTimeout: shutdown,
	})
	if err != nil {
		return nil, err
	}
	if err := bus.Listen(b, orderPlaced, "invoice", h, bus.WithConcurrency(2)); err != nil {
		return nil, err
	}
	return b, b.Start(context.Background())
}

func run() error {
	ctx := context.Background()

	// 1. Two processes of one group share the events.
	var mu sync.Mutex
	var wg sync.WaitGroup
	byProcess := map[string][]int{}
	handler := func(name string) bus.Handler[OrderPlaced] {
		return func(_ context.Context, d bus.Delivery[OrderPlaced]) error {
			mu.Lock()
			byProcess[name] = append(byProcess[name], d.Payload.Order)
			mu.Unlock()
			time.Sleep(5 * time.Millisecond) // some work, so both get a share
			wg.Done()
			return nil
		}
	}
	p1, err := process("billing-1", 10*time.Second, handler("billing-1"))
	if err != nil {
		return err
	}
	p2, err := process("billing-2", 10*time.Second, handler("billing-2"))
	if err != nil {
		return err
	}
	wg.Add(20)
	for i := 1; i <= 20; i++ {
		if _, err := bus.Fire(ctx, p1, orderPlaced, OrderPlaced{Order: i}); err != nil {
			return err
		}
	}
	wg.Wait()
	for _, name := range []string{"billing-1", "billing-2"} {
		orders := byProcess[name]
		sort.Ints(orders)
		fmt.Printf("%s invoiced orders %v\n", name, orders)
	}
	p1.Close()
	p2.Close()

	// 2. billing-1 dies while it handles order 100: the event is not acked.
	holding := make(chan struct{})
	stuck := make(chan struct{})
	defer close(stuck)
	dying, err := process("billing-1", 100*time.Millisecond, func(_ context.Context, d bus.Delivery[OrderPlaced]) error {
		close(holding)
		<-stuck // never finishes
		return nil
	})
	if err != nil {
		return err
	}
	if _, err := bus.Fire(ctx, dying, orderPlaced, OrderPlaced{Order: 100}); err != nil {
		return err
	}
	<-holding
	dying.Close() // gives up after its 100ms shutdown timeout: order 100 stays pending
	fmt.Println("billing-1 stopped while handling order 100")

	// 3. billing-1 restarts under the same name: it gets order 100 at once,
	// without waiting for the 60s acknowledgement timeout.
	start := time.Now()
	got := make(chan bus.Delivery[OrderPlaced], 1)
	restarted, err := process("billing-1", 10*time.Second, func(_ context.Context, d bus.Delivery[OrderPlaced]) error {
		select {
		case got <- d:
		default:
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer restarted.Close()
	select {
	case d := <-got:
		fmt.Printf("restarted billing-1 got order %d again after %s (attempt %d)\n",
			d.Payload.Order, time.Since(start).Round(time.Millisecond), d.Attempt)
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("the restarted process did not get its pending event")
	}
}
