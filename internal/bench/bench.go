package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/busline/busline/transports"
)

// Config says what to measure. Zero fields take the defaults.
type Config struct {
	// Transport is the broker URL: memory://, redis://..., amqp://... Required.
	Transport string
	// Events is the number of events fired on each side. Default 10000.
	Events int
	// Size is the size in bytes of each event's JSON payload, at least
	// MinSize. Default 256.
	Size int
	// Concurrency is the number of goroutines firing on each side and the
	// listener concurrency of the Busline side. Default 16.
	Concurrency int
	// Rate, when positive, paces the firing at about this many events per
	// second in total, to measure latency below saturation. Default 0: as
	// fast as the goroutines can fire.
	Rate float64
	// Stall ends a side with ErrStalled when no event was handled for this
	// long. Default 1 minute.
	Stall time.Duration
	// Progress, when set, receives a line per side per second while it runs.
	Progress io.Writer
	// Sides lists the sides to run, a subset of AllSides in any order;
	// empty runs every side the transport has.
	Sides []string
	// Rounds is how many times each side runs, the sides taking turns
	// (busline, watermill, watermill-tuned, raw, busline, ...), so that a
	// burst of outside load does not land on one side only; each side
	// reports its round with the median end-to-end rate. Default 1.
	Rounds int
	// Idempotency is the URL of the Busline side's dedup store; empty uses
	// the bus default, what a user gets (on redis:// the same Redis, under
	// the side's key prefix; memory:// elsewhere). A Redis store (redis://, rediss://) is isolated
	// under a fresh key prefix and emptied afterwards; memory:// needs
	// nothing. Other stores are refused.
	Idempotency string
	// RawBatch is how many events one firing goroutine of the raw loop
	// sends before it waits for the broker's replies (pipelined XADDs,
	// publishes before their confirms). Default 32; 1 gives the raw loop
	// the same number of events in flight as the other sides.
	RawBatch int
	// FireBatch is how many events one call of a firing goroutine of the
	// Busline and Watermill sides fires: Busline through bus.FireBatch,
	// Watermill through one Publish call with that many messages (which
	// watermill-redisstream, watermill-amqp and watermill-nats send one
	// after the other, each waiting for its reply). Default 1: bus.Fire and
	// a Publish of one message, what most code does. Not with Rate.
	FireBatch int
	// TunedSubscribers is the number of subscribers (router handlers
	// sharing the work) of the tuned Watermill side on Redis and AMQP. 0
	// uses the best count measured on our 2-core machine for the broker
	// (DefaultTunedSubscribers).
	TunedSubscribers int
	// Envelope makes the Watermill and raw sides put the metadata of
	// Busline's envelope on every message (DESIGN §4: ce-id, ce-source,
	// ce-type, ce-time, ce-specversion, content-type; the raw loops in
	// the layout of Busline's messages) and read the fire time from
	// ce-time, as Busline's handler does, so that every side sends and
	// parses the same metadata. Default false: the peers carry the fire
	// time only, as a service without an envelope would.
	Envelope bool
	// CPUProfile, when set, receives a CPU profile (pprof format) taken
	// while the Busline side fires and handles.
	CPUProfile io.Writer
	// BrokerPID, when positive, is the process ID of the broker on this
	// host (redis-server, RabbitMQ's beam.smp, nats-server): every side
	// then also reports the CPU time that process used while the side ran
	// (Side.BrokerCPU, from /proc/PID/stat; Linux only), so that a run
	// shows what an event costs the whole machine, not only this process.
	// Run fails with ErrInvalidConfig when the process cannot be read.
	BrokerPID int
}

// The sides of a run, as named in Config.Sides.
const (
	SideBusline        = "busline"
	SideWatermill      = "watermill"
	SideWatermillTuned = "watermill-tuned"
	SideRaw            = "raw"
)

// AllSides are the sides Run knows, in the order its first round runs them.
var AllSides = []string{SideBusline, SideWatermill, SideWatermillTuned, SideRaw}

func (c Config) wants(side string) bool {
	return len(c.Sides) == 0 || slices.Contains(c.Sides, side)
}

// DefaultTunedSubscribers is, per broker, the number of subscribers of the
// tuned Watermill side that gave the highest median rate in a sweep of 1,
// 2, 4, 8 and 16 at concurrency 16 on a quiet 2-core machine, three rounds
// each, confirmed by two more alternating sweeps (docs/benchmarks.md,
// "The peers").
var DefaultTunedSubscribers = map[string]int{"redis": 8, "amqp": 1}

// tunedSubscribers returns the subscriber count of the tuned side on scheme.
func (c Config) tunedSubscribers(scheme string) int {
	if c.TunedSubscribers > 0 {
		return c.TunedSubscribers
	}
	base := map[string]string{"rediss": "redis", "amqps": "amqp"}[scheme]
	if base == "" {
		base = scheme
	}
	if n, ok := DefaultTunedSubscribers[base]; ok {
		return n
	}
	return c.Concurrency
}

// DefaultRawBatch is the default Config.RawBatch.
const DefaultRawBatch = 32

// MinSize is the smallest payload: the JSON object {"data":""}.
const MinSize = len(`{"data":""}`)

// ErrStalled is returned when a side stopped handling events.
var ErrStalled = errors.New("bench: no event handled")

// ErrInvalidConfig is returned for a Config Run cannot work with.
var ErrInvalidConfig = errors.New("bench: invalid configuration")

func (c Config) withDefaults() Config {
	if c.Events == 0 {
		c.Events = 10000
	}
	if c.Size == 0 {
		c.Size = 256
	}
	if c.Concurrency == 0 {
		c.Concurrency = 16
	}
	if c.Stall == 0 {
		c.Stall = time.Minute
	}
	if c.Rounds == 0 {
		c.Rounds = 1
	}
	if c.RawBatch == 0 {
		c.RawBatch = DefaultRawBatch
	}
	if c.FireBatch == 0 {
		c.FireBatch = 1
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Events < 1:
		return fmt.Errorf("%w: events must be at least 1", ErrInvalidConfig)
	case c.Size < MinSize:
		return fmt.Errorf("%w: size must be at least %d bytes (the payload is the JSON object {\"data\":\"...\"})", ErrInvalidConfig, MinSize)
	case c.Concurrency < 1:
		return fmt.Errorf("%w: concurrency must be at least 1", ErrInvalidConfig)
	case c.Rate < 0:
		return fmt.Errorf("%w: rate must not be negative", ErrInvalidConfig)
	case c.Stall < 0:
		return fmt.Errorf("%w: stall must not be negative", ErrInvalidConfig)
	case c.TunedSubscribers < 0:
		return fmt.Errorf("%w: tuned subscribers must not be negative", ErrInvalidConfig)
	case c.Rounds < 1:
		return fmt.Errorf("%w: rounds must be at least 1", ErrInvalidConfig)
	case c.RawBatch < 1:
		return fmt.Errorf("%w: raw batch must be at least 1", ErrInvalidConfig)
	case c.FireBatch < 1:
		return fmt.Errorf("%w: fire batch must be at least 1", ErrInvalidConfig)
	case c.BrokerPID < 0:
		return fmt.Errorf("%w: broker pid must not be negative", ErrInvalidConfig)
	case c.FireBatch > 1 && c.Rate > 0:
		return fmt.Errorf("%w: a paced run (rate) fires one event per call; fire batch must be 1", ErrInvalidConfig)
	}
	for _, side := range c.Sides {
		if !slices.Contains(AllSides, side) {
			return fmt.Errorf("%w: unknown side %q (known: %s)", ErrInvalidConfig, side, strings.Join(AllSides, ", "))
		}
	}
	return nil
}

// Side is what one side of the comparison measured.
type Side struct {
	// Name says what ran: "busline (default chain)", "watermill-redisstream (defaults)", ...
	Name string `json:"name"`
	// Fire is the time until every publish returned.
	Fire time.Duration `json:"fire_ns"`
	// EndToEnd is the time from the first fire to the last handler call.
	EndToEnd time.Duration `json:"end_to_end_ns"`
	// FirePerSecond is Events / Fire.
	FirePerSecond float64 `json:"fire_events_per_s"`
	// EndToEndPerSecond is Events / EndToEnd.
	EndToEndPerSecond float64 `json:"end_to_end_events_per_s"`
	// P50 and P99 are percentiles of the fire → handler latency.
	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
	// CPU is the CPU time (user + system) the whole process used while the
	// side fired and handled, from getrusage; 0 where it cannot be read.
	CPU time.Duration `json:"cpu_ns"`
	// BrokerCPU is the CPU time (user + system) the broker's process
	// (Config.BrokerPID) used while the side fired and handled, in steps
	// of the kernel's clock tick (10 ms); 0 without a BrokerPID.
	BrokerCPU time.Duration `json:"broker_cpu_ns,omitempty"`
	// CallMean, CallP50 and CallP99 describe how long one fire call took
	// (a Fire, a publish and its confirm; a batch of the raw loop): with
	// K goroutines firing back to back, the fire rate is K × batch /
	// CallMean (Little's law), whatever the broker does.
	CallMean time.Duration `json:"call_mean_ns"`
	CallP50  time.Duration `json:"call_p50_ns"`
	CallP99  time.Duration `json:"call_p99_ns"`
}

// CPUPerEvent is the process CPU time per event, in microseconds.
func (s Side) CPUPerEvent(events int) float64 {
	if events == 0 {
		return 0
	}
	return float64(s.CPU) / float64(time.Microsecond) / float64(events)
}

// BrokerCPUPerEvent is the broker process's CPU time per event, in
// microseconds (0 without Config.BrokerPID).
func (s Side) BrokerCPUPerEvent(events int) float64 {
	if events == 0 {
		return 0
	}
	return float64(s.BrokerCPU) / float64(time.Microsecond) / float64(events)
}

// ran says whether the side was measured.
func (s Side) ran() bool { return s.Name != "" }

// Result is the outcome of Run.
type Result struct {
	// Transport is the URL scheme: memory, redis, amqp.
	Transport string
	// URL is the transport URL without its password.
	URL         string
	Events      int
	Size        int
	Concurrency int
	// Rate is the pacing asked for, 0 when none.
	Rate float64
	// Rounds is how many times each side ran (Config.Rounds).
	Rounds int
	// Envelope says the Watermill and raw sides carried Busline's
	// envelope (Config.Envelope).
	Envelope bool
	// BrokerPID is Config.BrokerPID: when positive, each side's BrokerCPU
	// was measured.
	BrokerPID int
	// Busline is what a user gets by default for the transport: bus.New
	// with the URL, the default chain, listener concurrency K.
	Busline Side
	// Watermill is plain Watermill with its defaults.
	Watermill Side
	// WatermillTuned is the fastest Watermill configuration bench knows
	// for the broker (see the package documentation).
	WatermillTuned Side
	// Raw is a loop on the broker's own client, no framework; not run for
	// memory://.
	Raw Side
}

// Ratio is Busline's end-to-end rate over Watermill's.
func (r *Result) Ratio() float64 {
	return ratio(r.Busline.EndToEndPerSecond, r.Watermill.EndToEndPerSecond)
}

// FireRatio is Busline's fire rate over Watermill's.
func (r *Result) FireRatio() float64 {
	return ratio(r.Busline.FirePerSecond, r.Watermill.FirePerSecond)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// TunedRatio is Busline's end-to-end rate over tuned Watermill's.
func (r *Result) TunedRatio() float64 {
	return ratio(r.Busline.EndToEndPerSecond, r.WatermillTuned.EndToEndPerSecond)
}

// TunedFireRatio is Busline's fire rate over tuned Watermill's.
func (r *Result) TunedFireRatio() float64 {
	return ratio(r.Busline.FirePerSecond, r.WatermillTuned.FirePerSecond)
}

// RawRatio is Busline's end-to-end rate over the raw loop's.
func (r *Result) RawRatio() float64 {
	return ratio(r.Busline.EndToEndPerSecond, r.Raw.EndToEndPerSecond)
}

// RawFireRatio is Busline's fire rate over the raw loop's.
func (r *Result) RawFireRatio() float64 {
	return ratio(r.Busline.FirePerSecond, r.Raw.FirePerSecond)
}

// Summary is the one-line JSON object `busline bench --json` prints last.
// A key of a side that did not run is left out.
type Summary struct {
	Transport                    string   `json:"transport"`
	Events                       int      `json:"events"`
	Size                         int      `json:"size"`
	BuslineEventsPerS            float64  `json:"busline_events_per_s"`
	WatermillEventsPerS          float64  `json:"watermill_events_per_s"`
	Ratio                        float64  `json:"ratio"`
	P50Milliseconds              float64  `json:"p50_ms"`
	P99Milliseconds              float64  `json:"p99_ms"`
	WatermillTunedEventsPerS     *float64 `json:"watermill_tuned_events_per_s,omitempty"`
	RawEventsPerS                *float64 `json:"raw_events_per_s,omitempty"`
	BuslineCPUMicrosPerEvent     *float64 `json:"busline_cpu_us_per_event,omitempty"`
	WatermillTunedCPUMicrosEvent *float64 `json:"watermill_tuned_cpu_us_per_event,omitempty"`
	RawCPUMicrosPerEvent         *float64 `json:"raw_cpu_us_per_event,omitempty"`
	// The broker process's CPU time per event on each side, with
	// --broker-pid (Config.BrokerPID).
	BuslineBrokerCPUMicrosPerEvent        *float64 `json:"busline_broker_cpu_us_per_event,omitempty"`
	WatermillTunedBrokerCPUMicrosPerEvent *float64 `json:"watermill_tuned_broker_cpu_us_per_event,omitempty"`
	RawBrokerCPUMicrosPerEvent            *float64 `json:"raw_broker_cpu_us_per_event,omitempty"`
	// BuslineCallMeanMilliseconds is the mean time of one Fire call; the
	// same for the other sides' fire calls (a raw batch for raw).
	BuslineCallMeanMilliseconds        *float64 `json:"busline_call_mean_ms,omitempty"`
	WatermillTunedCallMeanMilliseconds *float64 `json:"watermill_tuned_call_mean_ms,omitempty"`
	RawCallMeanMilliseconds            *float64 `json:"raw_call_mean_ms,omitempty"`
	// Envelope is present, true, when the peers carried Busline's
	// envelope (--envelope).
	Envelope bool `json:"envelope,omitempty"`
}

// Summary returns the rates (end to end), their ratio, Busline's latency
// and the CPU time per event.
func (r *Result) Summary() Summary {
	s := Summary{
		Transport:           r.Transport,
		Events:              r.Events,
		Size:                r.Size,
		BuslineEventsPerS:   round(r.Busline.EndToEndPerSecond, 1),
		WatermillEventsPerS: round(r.Watermill.EndToEndPerSecond, 1),
		Ratio:               round(r.Ratio(), 3),
		P50Milliseconds:     round(ms(r.Busline.P50), 3),
		P99Milliseconds:     round(ms(r.Busline.P99), 3),
	}
	opt := func(ran bool, v float64, digits int) *float64 {
		if !ran {
			return nil
		}
		v = round(v, digits)
		return &v
	}
	s.WatermillTunedEventsPerS = opt(r.WatermillTuned.ran(), r.WatermillTuned.EndToEndPerSecond, 1)
	s.RawEventsPerS = opt(r.Raw.ran(), r.Raw.EndToEndPerSecond, 1)
	s.BuslineCPUMicrosPerEvent = opt(r.Busline.ran() && r.Busline.CPU > 0, r.Busline.CPUPerEvent(r.Events), 2)
	s.WatermillTunedCPUMicrosEvent = opt(r.WatermillTuned.ran() && r.WatermillTuned.CPU > 0, r.WatermillTuned.CPUPerEvent(r.Events), 2)
	s.RawCPUMicrosPerEvent = opt(r.Raw.ran() && r.Raw.CPU > 0, r.Raw.CPUPerEvent(r.Events), 2)
	broker := r.BrokerPID > 0
	s.BuslineBrokerCPUMicrosPerEvent = opt(broker && r.Busline.ran(), r.Busline.BrokerCPUPerEvent(r.Events), 2)
	s.WatermillTunedBrokerCPUMicrosPerEvent = opt(broker && r.WatermillTuned.ran(), r.WatermillTuned.BrokerCPUPerEvent(r.Events), 2)
	s.RawBrokerCPUMicrosPerEvent = opt(broker && r.Raw.ran(), r.Raw.BrokerCPUPerEvent(r.Events), 2)
	s.BuslineCallMeanMilliseconds = opt(r.Busline.ran(), ms(r.Busline.CallMean), 3)
	s.WatermillTunedCallMeanMilliseconds = opt(r.WatermillTuned.ran(), ms(r.WatermillTuned.CallMean), 3)
	s.RawCallMeanMilliseconds = opt(r.Raw.ran(), ms(r.Raw.CallMean), 3)
	s.Envelope = r.Envelope
	return s
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// Run measures the sides cfg asks for (Busline, Watermill's defaults,
// tuned Watermill, the raw loop), one after the other, on the broker of
// cfg.Transport, and deletes what each side created as soon as it is done.
// With several rounds, each round starts one side later than the one
// before, so that no side always runs first, in a process just started.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	u, err := transports.ParseURL(cfg.Transport)
	if err != nil {
		return nil, err
	}
	b, err := newBroker(u, cfg.Events)
	if err != nil {
		return nil, err
	}
	res := &Result{
		Transport: u.Scheme, URL: transports.Redact(u),
		Events: cfg.Events, Size: cfg.Size, Concurrency: cfg.Concurrency, Rate: cfg.Rate, Rounds: cfg.Rounds, Envelope: cfg.Envelope, BrokerPID: cfg.BrokerPID,
	}
	if cfg.BrokerPID > 0 {
		if _, err := brokerCPUTime(cfg.BrokerPID); err != nil {
			return nil, fmt.Errorf("%w: broker pid %d: %w", ErrInvalidConfig, cfg.BrokerPID, err)
		}
	}
	res.Transport = b.scheme()
	sides := []struct {
		name string
		run  func(context.Context, Config) (Side, error)
		dst  *Side
	}{
		{SideBusline, func(ctx context.Context, cfg Config) (Side, error) { return runBusline(ctx, cfg, b) }, &res.Busline},
		{SideWatermill, b.runWatermill, &res.Watermill},
		{SideWatermillTuned, b.runWatermillTuned, &res.WatermillTuned},
		{SideRaw, b.runRaw, &res.Raw},
	}
	rounds := make([][]Side, len(sides))
	var wanted []int
	for i, s := range sides {
		if cfg.wants(s.name) {
			wanted = append(wanted, i)
		}
	}
	for r := range cfg.Rounds {
		order := make([]int, len(wanted))
		for k := range wanted {
			order[k] = wanted[(r+k)%len(wanted)]
		}
		for _, i := range order {
			s := sides[i]
			runtime.GC()
			side, err := s.run(ctx, cfg)
			if errors.Is(err, errNoSide) {
				// This broker has no such side: leave it out of the
				// rotation of the next rounds.
				wanted = slices.DeleteFunc(wanted, func(w int) bool { return w == i })
				continue
			}
			if err != nil {
				return nil, err
			}
			rounds[i] = append(rounds[i], side)
		}
	}
	for i, s := range sides {
		if len(rounds[i]) > 0 {
			*s.dst = medianSide(rounds[i])
		}
	}
	return res, nil
}

// medianSide returns the round with the median end-to-end rate (of an
// even count, the lower of the two middle ones).
func medianSide(rounds []Side) Side {
	s := slices.Clone(rounds)
	slices.SortFunc(s, func(a, b Side) int { return cmp.Compare(a.EndToEndPerSecond, b.EndToEndPerSecond) })
	return s[(len(s)-1)/2]
}

// errNoSide is returned by a broker that has no such side (raw for memory).
var errNoSide = errors.New("bench: no such side for this transport")

// broker is what differs between transports: how the Busline side is
// isolated, how plain Watermill runs, and how both are cleaned up.
type broker interface {
	scheme() string
	// buslineURL returns the URL of the Busline side, isolated under fresh names.
	buslineURL() string
	// cleanBusline deletes what the Busline side created.
	cleanBusline(ctx context.Context) error
	// runWatermill measures plain Watermill and deletes what it created.
	runWatermill(ctx context.Context, cfg Config) (Side, error)
	// runWatermillTuned measures the fastest Watermill configuration bench
	// knows for the broker.
	runWatermillTuned(ctx context.Context, cfg Config) (Side, error)
	// runRaw measures a loop on the broker's own client, or returns errNoSide.
	runRaw(ctx context.Context, cfg Config) (Side, error)
}

func newBroker(u *url.URL, events int) (broker, error) {
	switch u.Scheme {
	case "memory":
		return newMemoryBroker(u, events)
	case "redis", "rediss":
		return newRedisBroker(u)
	case "amqp", "amqps":
		return newAMQPBroker(u)
	case "nats", "tls":
		return newNATSBroker(u)
	}
	return nil, fmt.Errorf("%w: bench: no plain Watermill counterpart for %s:// (want memory, redis, amqp or nats)", transports.ErrUnsupported, u.Scheme)
}

// payload is the JSON object of every event: {"data":"xxx..."} of cfg.Size bytes.
type payload struct {
	Data string `json:"data"`
}

func newPayload(size int) payload {
	b := make([]byte, size-MinSize)
	for i := range b {
		b[i] = 'x'
	}
	return payload{Data: string(b)}
}

// recorder collects the latency of each handled event until n were handled.
type recorder struct {
	n       int64
	slot    atomic.Int64
	handled atomic.Int64
	lat     []time.Duration
	done    chan struct{}
}

func newRecorder(n int) *recorder {
	return &recorder{n: int64(n), lat: make([]time.Duration, n), done: make(chan struct{})}
}

// record notes one handled event fired at firedAt. Events beyond n
// (redeliveries) are ignored.
func (r *recorder) record(firedAt time.Time) {
	i := r.slot.Add(1) - 1
	if i >= r.n {
		return
	}
	r.lat[i] = time.Since(firedAt)
	if r.handled.Add(1) == r.n {
		close(r.done)
	}
}

// percentiles returns p50 and p99; call it after done is closed.
func (r *recorder) percentiles() (time.Duration, time.Duration) {
	l := slices.Clone(r.lat)
	slices.Sort(l)
	at := func(p int) time.Duration { return l[min(len(l)-1, len(l)*p/100)] }
	return at(50), at(99)
}

// pace sends n tokens at rate per second from start, then closes tokens;
// it stops early when ctx is done.
func pace(ctx context.Context, start time.Time, rate float64, n int64, tokens chan<- struct{}) {
	defer close(tokens)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for sent := int64(0); sent < n; {
		due := min(n, int64(time.Since(start).Seconds()*rate)+1)
		for ; sent < due; sent++ {
			select {
			case tokens <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// measure fires cfg.Events events from cfg.Concurrency goroutines with fire
// and waits until rec saw them all handled, printing progress each second.
func measure(ctx context.Context, cfg Config, name string, rec *recorder, fire func(ctx context.Context) error) (Side, error) {
	return measureBatches(ctx, cfg, name, rec, 1, func(ctx context.Context, n int) error {
		for range n {
			if err := fire(ctx); err != nil {
				return err
			}
		}
		return nil
	})
}

// measureBatches is measure for a side that fires up to batch events in one
// call of fire (fire(ctx, n) fires n events and returns when all were
// accepted). With cfg.Rate set, each call fires one event.
func measureBatches(ctx context.Context, cfg Config, name string, rec *recorder, batch int, fire func(ctx context.Context, n int) error) (Side, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := int64(cfg.Events)
	var next, fired atomic.Int64
	var fireErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	calls := make([][]time.Duration, cfg.Concurrency) // one slice per goroutine
	cpu0 := cpuTime()
	broker0 := cfg.brokerCPU()
	start := time.Now()
	take := func() int {
		end := next.Add(int64(batch))
		return int(max(0, min(int64(batch), n-(end-int64(batch)))))
	}
	if cfg.Rate > 0 {
		tokens := make(chan struct{})
		wg.Go(func() { pace(ctx, start, cfg.Rate, n, tokens) })
		take = func() int {
			if _, ok := <-tokens; ok {
				return 1
			}
			return 0
		}
	}
	for g := range cfg.Concurrency {
		wg.Go(func() {
			took := make([]time.Duration, 0, int(n)/cfg.Concurrency/batch+1)
			defer func() { calls[g] = took }()
			for k := take(); k > 0; k = take() {
				t0 := time.Now()
				if err := fire(ctx, k); err != nil {
					errOnce.Do(func() { fireErr = err; cancel() })
					return
				}
				took = append(took, time.Since(t0))
				fired.Add(int64(k))
			}
		})
	}
	firedAll := make(chan struct{})
	var fireTook time.Duration
	go func() {
		wg.Wait()
		fireTook = time.Since(start)
		close(firedAll)
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last, lastAt := int64(0), time.Now()
	for done := false; !done; {
		select {
		case <-rec.done:
			done = true
		case <-ctx.Done():
			<-firedAll
			if fireErr != nil {
				return Side{}, fmt.Errorf("bench: %s: fire: %w", name, fireErr)
			}
			return Side{}, ctx.Err()
		case now := <-tick.C:
			h := rec.handled.Load()
			fmt.Fprintf(cfg.Progress, "%s: fired %d/%d, handled %d/%d\n", name, fired.Load(), n, h, n)
			if h != last {
				last, lastAt = h, now
			} else if now.Sub(lastAt) > cfg.Stall {
				cancel()
				<-firedAll
				return Side{}, fmt.Errorf("%w for %s on the %s side: handled %d of %d", ErrStalled, cfg.Stall, name, h, n)
			}
		}
	}
	took := time.Since(start)
	<-firedAll
	cpu := cpuTime() - cpu0
	brokerCPU := max(0, cfg.brokerCPU()-broker0) // 0 when the broker could not be read at the end
	fmt.Fprintf(cfg.Progress, "%s: fired %d/%d, handled %d/%d in %s\n", name, n, n, n, n, took.Round(time.Millisecond))
	p50, p99 := rec.percentiles()
	mean, c50, c99 := callStats(slices.Concat(calls...))
	return Side{
		Name: name, Fire: fireTook, EndToEnd: took,
		FirePerSecond:     float64(n) / fireTook.Seconds(),
		EndToEndPerSecond: float64(n) / took.Seconds(),
		P50:               p50, P99: p99, CPU: cpu, BrokerCPU: brokerCPU,
		CallMean: mean, CallP50: c50, CallP99: c99,
	}, nil
}

// callStats returns the mean, p50 and p99 of the fire call durations d.
func callStats(d []time.Duration) (mean, p50, p99 time.Duration) {
	if len(d) == 0 {
		return 0, 0, 0
	}
	slices.Sort(d)
	var sum time.Duration
	for _, v := range d {
		sum += v
	}
	return sum / time.Duration(len(d)), d[len(d)*50/100], d[min(len(d)-1, len(d)*99/100)]
}

// brokerCPU is the CPU time the broker's process (BrokerPID) used so far;
// 0 without one, or once it cannot be read (Run checked it could at the
// start).
func (c Config) brokerCPU() time.Duration {
	if c.BrokerPID <= 0 {
		return 0
	}
	d, err := brokerCPUTime(c.BrokerPID)
	if err != nil {
		return 0
	}
	return d
}
