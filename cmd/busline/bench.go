package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/busline/busline/internal/bench"
)

func (a *app) benchCommand() *cobra.Command {
	var cfg bench.Config
	var profile string
	cmd := &cobra.Command{
		Use:   "bench --transport URL --events N --size BYTES --concurrency K",
		Short: "Measure Busline against plain Watermill on the same broker",
		Long: `bench fires N events of BYTES bytes from K goroutines and consumes them, on
the same broker in the same run, one side after the other:

  busline          what a user gets by default for the transport: bus.New with
                   the URL, the default middleware chain, listener concurrency K;
                   Fire returns after the XADD reply or the publisher confirm.
                   On redis:// and nats:// streams are not trimmed (maxlen=0
                   unless the URL sets maxlen), as on the Watermill sides.
  watermill        plain Watermill with its defaults through a router handler:
                   GoChannel (persistent) for memory://, watermill-redisstream
                   for redis:// (with a consumer group, without which it reads
                   without acknowledging), watermill-amqp/v2
                   NewDurableQueueConfig for amqp:// (the broker's default queue
                   version),
                   watermill-nats/v2 pkg/jetstream (its defaults, on a stream
                   bench creates) for nats://.
  watermill-tuned  the fastest Watermill configuration bench knows:
                   memory: GoChannel (persistent) with a subscription buffer of N;
                   redis: S subscribers in one consumer group (consumers c1..cS),
                   each behind its own router handler, one publisher, one client
                   with a connection for every publisher and reader;
                   amqp: NewDurableQueueConfig with ChannelPoolSize K and
                   ConfirmDelivery on (publisher confirms, as Busline), S router
                   handlers on the queue, each its own channel with prefetch 16,
                   the queue on storage version 2 (as Busline's and raw's).
                   S (--watermill-subscribers) is 8 on Redis and 1 on AMQP:
                   the best of 1, 2, 4, 8 and 16 measured on a quiet 2-core
                   machine.
  raw              a loop on the broker's own client, no framework, written for
                   throughput (not for memory://). redis: K goroutines each send
                   32 XADDs (--raw-batch) in one pipeline; one reader,
                   XREADGROUP COUNT 512, the XACK of each batch in the pipeline
                   of the next read. amqp: K goroutines, each with a confirm
                   channel, publish 32 (--raw-batch) persistent messages, then
                   wait for their confirms; one consumer on a connection of its
                   own, prefetch 512, basic.ack multiple=true every 64
                   deliveries or when idle.

Every side encodes the same JSON payload for each event it fires, from K
goroutines, and decodes it in its handler; AMQP publishes are persistent and
confirmed on every side but Watermill defaults (which has no confirms). It
prints the fire rate, the end-to-end rate, the fire → handler latency (p50,
p99), the process CPU time per event (getrusage around each side) and how long
one fire call took (mean, p99: with K goroutines firing back to back, the fire
rate is K / mean call) of each side, and Busline's ratios to the others.
Without --rate, events are fired as fast as possible and the latency includes
the queue that builds up; --rate R paces the firing to measure latency under a
steady load. --rounds R runs each side R times, the sides taking turns (each
round starting one side later), and reports each side's median round, so that
a burst of outside load on a shared machine does not land on one side only.
The Busline side uses the bus's default dedup store (on redis:// the same
Redis); --idempotency memory:// or redis://... gives it that store instead.
--fire-batch N makes every firing call of the Busline and Watermill sides fire
N events: Busline through bus.FireBatch (as many events in flight as the raw
loop's --raw-batch 32 at N = 32), Watermill through one Publish of N messages,
which the Watermill publishers send one after the other; not with --rate.
--envelope makes the Watermill sides and the raw loop carry the metadata
Busline's events carry (the CloudEvents envelope: ce-id, ce-source, ce-type,
ce-time, ce-specversion, content-type) and read the fire time from ce-time,
so that every side sends and parses the same metadata; the raw loops lay it
out as Busline does (AMQP: headers, the UUID also in _watermill_message_uuid
and the message-id property; Redis: the UUID, the envelope and the payload
in three fields). By default they carry the fire time only.
--sides runs a subset; --cpuprofile FILE writes a CPU profile of the Busline
side (the profiler's own cost then counts in that side's CPU per event).
--broker-pid PID (Linux) adds the CPU time the broker's process on this host
used per event on each side (redis-server, RabbitMQ's beam.smp, nats-server;
from /proc/PID/stat, in 10 ms ticks): on a small machine the broker shares the
cores with bench, and the sum of both columns bounds the rate.

With --json it prints one line, a JSON object with the keys transport, events,
size, busline_events_per_s, watermill_events_per_s, ratio (end to end,
busline/watermill), p50_ms and p99_ms (Busline's latency), and, for the sides
that ran, watermill_tuned_events_per_s, raw_events_per_s,
busline_cpu_us_per_event, watermill_tuned_cpu_us_per_event,
raw_cpu_us_per_event, with --broker-pid busline_broker_cpu_us_per_event,
watermill_tuned_broker_cpu_us_per_event and raw_broker_cpu_us_per_event, and
busline_call_mean_ms, watermill_tuned_call_mean_ms and raw_call_mean_ms (the
mean time of one fire call; a raw call fires --raw-batch events), and
"envelope": true with --envelope.

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
			// bench.Run checks the rest (sides, rounds, ...): ErrInvalidConfig is a usage error.
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
			if profile != "" {
				f, err := os.Create(profile)
				if err != nil {
					return usagef("--cpuprofile: %v", err)
				}
				defer f.Close()
				cfg.CPUProfile = f
			}
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
	f.StringSliceVar(&cfg.Sides, "sides", nil, "sides to run, comma-separated: "+strings.Join(bench.AllSides, ",")+" (default all)")
	f.IntVar(&cfg.Rounds, "rounds", 1, "run each side this many times, the sides taking turns, and report each side's median round (by end-to-end rate)")
	f.StringVar(&cfg.Idempotency, "idempotency", "", "dedup store of the Busline side: memory:// or redis://... (default: the bus default); a Redis store is isolated and emptied")
	f.IntVar(&cfg.RawBatch, "raw-batch", bench.DefaultRawBatch, "events each firing goroutine of the raw loop sends before waiting for the replies (1: as many in flight as the other sides)")
	f.IntVar(&cfg.FireBatch, "fire-batch", 1, "events each firing call of the Busline side (bus.FireBatch) and the Watermill sides (one Publish) fires (1: bus.Fire)")
	f.IntVar(&cfg.TunedSubscribers, "watermill-subscribers", 0, "subscribers (router handlers sharing the work) of the tuned Watermill side (0: the best measured, 8 on Redis and 1 on AMQP)")
	f.BoolVar(&cfg.Envelope, "envelope", false, "the Watermill and raw sides carry Busline's envelope metadata (ce-id, ce-source, ce-type, ce-time, ce-specversion, content-type)")
	f.StringVar(&profile, "cpuprofile", "", "write a CPU profile of the Busline side to this file")
	f.IntVar(&cfg.BrokerPID, "broker-pid", 0, "process ID of the broker on this host: also report the CPU time it used per event on each side (Linux)")
	return cmd
}

func (a *app) printBench(r *bench.Result) error {
	pacing := "as fast as possible"
	if r.Rate > 0 {
		pacing = "at " + rate(r.Rate) + " events/s"
	}
	if r.Rounds > 1 {
		pacing += fmt.Sprintf(", each side's median of %d rounds", r.Rounds)
	}
	if r.Envelope {
		pacing += ", the peers carrying Busline's envelope"
	}
	fmt.Fprintf(a.stdout, "busline bench on %s: %d events of %d bytes, concurrency %d, fired %s, %d CPUs\n\n",
		r.URL, r.Events, r.Size, r.Concurrency, pacing, runtime.NumCPU())
	broker := r.BrokerPID > 0
	head := []string{"FIRE EVENTS/S", "END-TO-END EVENTS/S", "P50 MS", "P99 MS", "CPU µS/EVENT", "CALL MEAN/P99 MS"}
	if broker {
		head = append(head, "BROKER CPU µS/EVENT")
	}
	t := newTable(a.stdout, append([]string{""}, head...)...)
	var others []bench.Side
	for _, s := range []bench.Side{r.Busline, r.Watermill, r.WatermillTuned, r.Raw} {
		if s.Name == "" {
			continue
		}
		cells := []string{rate(s.FirePerSecond), rate(s.EndToEndPerSecond), millis(s.P50.Seconds()), millis(s.P99.Seconds()), micros(s.CPUPerEvent(r.Events)),
			millis(s.CallMean.Seconds()) + "/" + millis(s.CallP99.Seconds())}
		if broker {
			cells = append(cells, micros(s.BrokerCPUPerEvent(r.Events)))
		}
		t.row(append([]string{s.Name}, cells...)...)
		if s != r.Busline {
			others = append(others, s)
		}
	}
	if r.Busline.Name != "" {
		for _, o := range others {
			label := map[string]string{r.Watermill.Name: "watermill", r.WatermillTuned.Name: "watermill-tuned", r.Raw.Name: "raw"}[o.Name]
			cells := []string{times(ratioOf(r.Busline.FirePerSecond, o.FirePerSecond)),
				times(ratioOf(r.Busline.EndToEndPerSecond, o.EndToEndPerSecond)), "-", "-",
				times(ratioOf(r.Busline.CPUPerEvent(r.Events), o.CPUPerEvent(r.Events))), "-"}
			if broker {
				cells = append(cells, times(ratioOf(r.Busline.BrokerCPUPerEvent(r.Events), o.BrokerCPUPerEvent(r.Events))))
			}
			t.row(append([]string{"ratio busline/" + label}, cells...)...)
		}
	}
	return t.flush()
}

func ratioOf(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func micros(v float64) string {
	if v == 0 {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func rate(v float64) string   { return strconv.FormatFloat(v, 'f', 0, 64) }
func millis(s float64) string { return strconv.FormatFloat(s*1000, 'f', 2, 64) }
func times(v float64) string  { return strconv.FormatFloat(v, 'f', 2, 64) + "x" }
