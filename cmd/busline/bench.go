package main

import (
	"fmt"
	"runtime"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/busline/busline/internal/bench"
)

func (a *app) benchCommand() *cobra.Command {
	var cfg bench.Config
	cmd := &cobra.Command{
		Use:   "bench --transport URL --events N --size BYTES --concurrency K",
		Short: "Measure Busline against plain Watermill on the same broker",
		Long: `bench fires N events of BYTES bytes from K goroutines and consumes them through
the bus with the default middleware chain (listener concurrency K); then it does
the same with plain Watermill and its defaults on the same broker: GoChannel
(persistent) for memory://, watermill-redisstream for redis://, watermill-amqp/v2
NewDurableQueueConfig for amqp://, watermill-nats/v2 pkg/jetstream (its
defaults, on a stream bench creates) for nats://. It prints the fire rate,
the end-to-end rate and the fire → handler latency (p50, p99) of both, and
the ratios. Without
--rate, events are fired as fast as possible and the latency includes the
queue that builds up; --rate R paces the firing to measure latency under a
steady load.

With --json it prints one line, a JSON object with the keys transport, events,
size, busline_events_per_s, watermill_events_per_s, ratio (end to end,
busline/watermill), p50_ms and p99_ms (Busline's latency).

Everything bench creates (Redis keys, AMQP queues and exchange, NATS streams) has a random
"busline-bench-" name and is deleted before it exits. The transport defaults to
memory:// when none is configured.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case cfg.Events < 1:
				return usagef("--events must be at least 1")
			case cfg.Size < bench.MinSize:
				return usagef("--size must be at least %d bytes (the payload is the JSON object {\"data\":\"...\"})", bench.MinSize)
			case cfg.Concurrency < 1:
				return usagef("--concurrency must be at least 1")
			case cfg.Rate < 0:
				return usagef("--rate must not be negative")
			case cfg.Stall < 0:
				return usagef("--stall must not be negative")
			}
			c, err := a.busConfig()
			if err != nil {
				return err
			}
			if c.Transport == "" {
				c.Transport = "memory://"
			}
			cfg.Transport = c.Transport
			cfg.Progress = a.stderr
			// Reach the broker first, so that an unreachable one has its own exit code.
			t, url, err := a.openURL(cmd.Context(), c.Transport)
			if err != nil {
				return err
			}
			_ = t.Close()
			a.progressf("bench on %s: %d events of %d bytes, concurrency %d", url, cfg.Events, cfg.Size, cfg.Concurrency)
			res, err := bench.Run(cmd.Context(), cfg)
			if err != nil {
				return failed(err)
			}
			if a.json {
				return writeJSONLine(a.stdout, res.Summary())
			}
			return a.printBench(res)
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Events, "events", 10000, "events fired on each side")
	f.IntVar(&cfg.Size, "size", 256, "payload size in bytes (a JSON object), at least "+strconv.Itoa(bench.MinSize))
	f.IntVar(&cfg.Concurrency, "concurrency", 16, "goroutines firing, and the Busline listener's concurrency")
	f.Float64Var(&cfg.Rate, "rate", 0, "fire about this many events per second in total, to measure latency below saturation (0: as fast as possible)")
	f.DurationVar(&cfg.Stall, "stall", 0, "give up when no event was handled for this long (default 1m)")
	return cmd
}

func (a *app) printBench(r *bench.Result) error {
	pacing := "as fast as possible"
	if r.Rate > 0 {
		pacing = "at " + rate(r.Rate) + " events/s"
	}
	fmt.Fprintf(a.stdout, "busline bench on %s: %d events of %d bytes, concurrency %d, fired %s, %d CPUs\n\n",
		r.URL, r.Events, r.Size, r.Concurrency, pacing, runtime.NumCPU())
	t := newTable(a.stdout, "", "FIRE EVENTS/S", "END-TO-END EVENTS/S", "P50 MS", "P99 MS")
	for _, s := range []bench.Side{r.Busline, r.Watermill} {
		t.row(s.Name, rate(s.FirePerSecond), rate(s.EndToEndPerSecond), millis(s.P50.Seconds()), millis(s.P99.Seconds()))
	}
	t.row("ratio busline/watermill", times(r.FireRatio()), times(r.Ratio()), "-", "-")
	return t.flush()
}

func rate(v float64) string   { return strconv.FormatFloat(v, 'f', 0, 64) }
func millis(s float64) string { return strconv.FormatFloat(s*1000, 'f', 2, 64) }
func times(v float64) string  { return strconv.FormatFloat(v, 'f', 2, 64) + "x" }
