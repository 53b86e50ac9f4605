package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/idempotency/pgstore"      // postgres:// idempotency, Tx
	_ "github.com/busline/busline/idempotency/redisstore" // redis:// idempotency
	_ "github.com/busline/busline/transports/all"
)

// envChild holds the JSON childSpec of a listener process: the test binary
// started with it runs one listener (runChild) instead of the tests.
const envChild = "BUSLINE_FAULTS_CHILD"

// tick is the payload of the events the suite fires.
type tick struct {
	N int `json:"n"`
}

// ticked is the event the suite fires; each test isolates it with its own
// key prefix (Redis), exchange and queue prefix (RabbitMQ) or broker name (memory).
var ticked = bus.NewEvent[tick]("faults", "ticked")

// childSpec configures a listener process.
type childSpec struct {
	Transport       string        `json:"transport"`
	Idempotency     string        `json:"idempotency,omitempty"`
	Service         string        `json:"service"`
	Process         string        `json:"process"`
	Listener        string        `json:"listener"`
	AckTimeout      time.Duration `json:"ack_timeout"`
	Concurrency     int           `json:"concurrency"`
	Work            time.Duration `json:"work"`             // each handler call sleeps this long
	Out             string        `json:"out"`              // file the handler appends its lines to
	Effects         string        `json:"effects"`          // table the handler inserts its effect into through pgstore.Tx
	Begin           bool          `json:"begin"`            // also write a B line when a handler starts
	ShutdownTimeout time.Duration `json:"shutdown_timeout"` // bus.Config.ShutdownTimeout
}

// Lines of a child's output file, one write each:
//
//	B <event ID> <attempt> <unix ns> <process>   a handler call started (Begin only)
//	H <event ID> <attempt> <unix ns> <process>   a handler call finished its effect and returns nil
//
// Its standard output says "boot <unix ns>" when main starts and
// "stopped <unix ns> <error>" when bus.Run returned.

// runChild is the main of a listener process: bus.Run until SIGTERM or
// SIGINT (signal.NotifyContext), exit status 0 when Run returned nil.
func runChild(raw string) int {
	fmt.Printf("boot %d\n", time.Now().UnixNano())
	var s childSpec
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		fmt.Fprintln(os.Stderr, "child: bad spec:", err)
		return 2
	}
	out, err := os.OpenFile(s.Out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	defer out.Close()
	line := func(kind string, d bus.Delivery[tick]) {
		// One write per line: O_APPEND keeps lines of concurrent handlers
		// whole, and the kernel keeps what was written when we are killed.
		b := make([]byte, 0, 96)
		b = append(b, kind...)
		b = append(b, ' ')
		b = append(b, d.ID...)
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(d.Attempt), 10)
		b = append(b, ' ')
		b = strconv.AppendInt(b, time.Now().UnixNano(), 10)
		b = append(b, ' ')
		b = append(b, s.Process...)
		b = append(b, '\n')
		_, _ = out.Write(b)
	}
	level := slog.LevelWarn
	if os.Getenv("BUSLINE_FAULTS_CHILD_DEBUG") == "1" {
		level = slog.LevelDebug
	}
	b, err := bus.New(bus.Config{
		Service: s.Service, Process: s.Process, Transport: s.Transport, Idempotency: s.Idempotency,
		ShutdownTimeout: s.ShutdownTimeout,
		Logger:          slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	err = bus.Listen(b, ticked, s.Listener, func(ctx context.Context, d bus.Delivery[tick]) error {
		if s.Begin {
			line("B", d)
		}
		time.Sleep(s.Work)
		if s.Effects != "" {
			if _, err := pgstore.Tx(ctx).Exec(ctx, "INSERT INTO "+s.Effects+" (event_id, process) VALUES ($1, $2)", d.ID, s.Process); err != nil {
				return err
			}
		}
		line("H", d)
		return nil
	}, bus.WithAckTimeout(s.AckTimeout), bus.WithConcurrency(s.Concurrency))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err = b.Run(ctx)
	fmt.Printf("stopped %d %v\n", time.Now().UnixNano(), err)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: Run:", err)
		return 1
	}
	return 0
}
