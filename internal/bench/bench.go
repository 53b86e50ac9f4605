package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"runtime"
	"slices"
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
}

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
}

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
	Rate      float64
	Busline   Side
	Watermill Side
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

// Summary is the one-line JSON object `busline bench --json` prints last.
type Summary struct {
	Transport           string  `json:"transport"`
	Events              int     `json:"events"`
	Size                int     `json:"size"`
	BuslineEventsPerS   float64 `json:"busline_events_per_s"`
	WatermillEventsPerS float64 `json:"watermill_events_per_s"`
	Ratio               float64 `json:"ratio"`
	P50Milliseconds     float64 `json:"p50_ms"`
	P99Milliseconds     float64 `json:"p99_ms"`
}

// Summary returns the rates (end to end), their ratio and Busline's latency.
func (r *Result) Summary() Summary {
	return Summary{
		Transport:           r.Transport,
		Events:              r.Events,
		Size:                r.Size,
		BuslineEventsPerS:   round(r.Busline.EndToEndPerSecond, 1),
		WatermillEventsPerS: round(r.Watermill.EndToEndPerSecond, 1),
		Ratio:               round(r.Ratio(), 3),
		P50Milliseconds:     round(ms(r.Busline.P50), 3),
		P99Milliseconds:     round(ms(r.Busline.P99), 3),
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// Run measures the Busline side, then the Watermill side, on the broker of
// cfg.Transport, and deletes what each side created as soon as it is done.
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
		Events: cfg.Events, Size: cfg.Size, Concurrency: cfg.Concurrency, Rate: cfg.Rate,
	}
	res.Transport = b.scheme()
	runtime.GC()
	if res.Busline, err = runBusline(ctx, cfg, b); err != nil {
		return nil, err
	}
	runtime.GC()
	if res.Watermill, err = b.runWatermill(ctx, cfg); err != nil {
		return nil, err
	}
	return res, nil
}

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
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := int64(cfg.Events)
	var next, fired atomic.Int64
	var fireErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	take := func() bool { return next.Add(1) <= n }
	if cfg.Rate > 0 {
		tokens := make(chan struct{})
		wg.Go(func() { pace(ctx, start, cfg.Rate, n, tokens) })
		take = func() bool { _, ok := <-tokens; return ok }
	}
	for range cfg.Concurrency {
		wg.Go(func() {
			for take() {
				if err := fire(ctx); err != nil {
					errOnce.Do(func() { fireErr = err; cancel() })
					return
				}
				fired.Add(1)
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
	fmt.Fprintf(cfg.Progress, "%s: fired %d/%d, handled %d/%d in %s\n", name, n, n, n, n, took.Round(time.Millisecond))
	p50, p99 := rec.percentiles()
	return Side{
		Name: name, Fire: fireTook, EndToEnd: took,
		FirePerSecond:     float64(n) / fireTook.Seconds(),
		EndToEndPerSecond: float64(n) / took.Seconds(),
		P50:               p50, P99: p99,
	}, nil
}
