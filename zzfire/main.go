package main

import (
	"context"
	"fmt"
	"encoding/json"
	"os"
	"strings"
	"runtime/pprof"
	"syscall"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wredis "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/bus"
	_ "github.com/busline/busline/transports/all"
)

type P struct {
	Data string `json:"data"`
}

var ev = bus.NewEvent[P]("zzfire", "ev")

func run(name string, n int, f func() error) {
	var left atomic.Int64
	left.Store(int64(n))
	var wg sync.WaitGroup
	start := time.Now()
	for range 16 {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if err := f(); err != nil {
					panic(err)
				}
			}
		})
	}
	wg.Wait()
	d := time.Since(start)
	var ru syscall.Rusage
	syscall.Getrusage(0, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	fmt.Printf("%-10s %8.0f/s  cpu %.1f us/op (whole process)\n", name, float64(n)/d.Seconds(), float64(cpu.Microseconds())/float64(n))
}

func main() {
	ctx := context.Background()
	payload := P{Data: strings.Repeat("x", 240)}
	n := 40000
	which := os.Args[1]
	if len(os.Args) > 2 {
		f, _ := os.Create(os.Args[2])
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	switch which {
	case "busline":
		b, err := bus.New(bus.Config{Service: "zzf", Process: "p", Transport: "redis://127.0.0.1:6379/0?prefix=zzfire:"})
		if err != nil {
			panic(err)
		}
		run("busline", n, func() error { _, err := bus.Fire(ctx, b, ev, payload); return err })
		b.Close()
	case "watermill":
		c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", PoolSize: 32})
		pub, err := wredis.NewPublisher(wredis.PublisherConfig{Client: c}, watermill.NopLogger{})
		if err != nil {
			panic(err)
		}
		run("watermill", n, func() error {
			body, err := json.Marshal(payload)
			if err != nil {
				return err
			}
			return pub.Publish("zzfire:wm", message.NewMessage(watermill.NewUUID(), body))
		})
	}
}
