package faults

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/busline/busline/bus"
)

// scheduleBenchSeconds is how long BenchmarkScheduleLateness fires: 30 s,
// or BUSLINE_SCHEDULE_SECONDS.
func scheduleBenchSeconds() int {
	if v, err := strconv.Atoi(os.Getenv("BUSLINE_SCHEDULE_SECONDS")); err == nil && v > 0 {
		return v
	}
	return 30
}

// BenchmarkScheduleLateness measures how late scheduled events reach their
// handler on Redis and on NATS JetStream: a producer (no mover of its own) fires 1,000
// scheduled events per second, each due 0.5–3 s later, to a group of two
// listener processes (each running a mover); halfway through, listener p1
// is restarted with the same name — stopped with SIGTERM (graceful) or
// SIGKILL — while p2 goes on. Lateness is the handler's clock minus the
// due time, both on this machine. It reports p50, p99, p99.9 and max, and
// counts events lost, handled twice and handled early. Run it with
//
//	go test -run '^$' -bench 'ScheduleLateness/redis' -benchtime 1x ./internal/faults/
//	go test -run '^$' -bench 'ScheduleLateness/nats' -benchtime 1x ./internal/faults/
func BenchmarkScheduleLateness(b *testing.B) {
	for _, kind := range []string{"redis", "nats"} {
		for _, sig := range []string{"sigterm", "sigkill"} {
			b.Run(kind+"/"+sig, func(b *testing.B) {
				for range b.N {
					scheduleLateness(b, kind, sig, scheduleBenchSeconds())
				}
			})
		}
	}
}

func scheduleLateness(b *testing.B, kind, sig string, seconds int) {
	b.StopTimer()
	tg := newTarget(b, kind)
	dir := b.TempDir()
	var files []string
	start := func(process string, i int) *child {
		spec := tg.child(process, outFile(dir, fmt.Sprintf("%s-%d", process, i)))
		spec.AckTimeout = time.Minute
		spec.Concurrency = 16
		files = append(files, spec.Out)
		return startChild(b, spec)
	}
	p1 := start("p1", 0)
	p2 := start("p2", 0)
	waitFor(b, 30*time.Second, "the listeners to join their group", tg.ready)
	pub := newBus(b, bus.Config{Service: tg.service, Transport: withQuery(tg.url, "no_schedule_mover=true")})

	const rate = 1000 // events per second, fired in bursts of 10 every 10 ms
	total := rate * seconds
	due := make(map[string]time.Time, total)
	var mu sync.Mutex
	ctx := context.Background()
	t0 := time.Now()
	restarted := make(chan time.Time, 1)
	go func() {
		time.Sleep(time.Duration(seconds) * time.Second / 2)
		at := time.Now()
		if sig == "sigkill" {
			p1.kill()
		} else if err, ok := p1.terminate(30 * time.Second); !ok || err != nil {
			b.Errorf("p1 on SIGTERM: exited %v, error %v", ok, err)
		}
		p1 = start("p1", 1)
		restarted <- at
	}()
	b.StartTimer()
	tk := time.NewTicker(10 * time.Millisecond)
	failed := 0
	for i := 0; i < total; {
		<-tk.C
		for range 10 {
			delay := 500*time.Millisecond + time.Duration(i%2500)*time.Millisecond
			at := time.Now().Add(delay)
			id, err := bus.Fire(ctx, pub, ticked, tick{N: i}, bus.WithDeliverAt(at))
			if err != nil {
				failed++
			} else {
				mu.Lock()
				due[id] = at
				mu.Unlock()
			}
			i++
		}
	}
	tk.Stop()
	firedFor := time.Since(t0)
	ids := make([]string, 0, len(due))
	for id := range due {
		ids = append(ids, id)
	}
	stoppedAt := <-restarted
	waitHandled(b, ids, files, 2*time.Minute)
	b.StopTimer()

	byID := handledBy(readRecords(b, files...))
	// Lateness of the events due within 2 s after the restart began, apart.
	var late, nearRestart []time.Duration
	lost, dup, early, over100 := 0, 0, 0, 0
	slowBy := map[int]int{}    // events over 100 ms late by the second of their due time
	slowIn := map[string]int{} // and by the process that handled them
	for id, at := range due {
		rs := byID[id]
		if len(rs) == 0 {
			lost++
			continue
		}
		if len(rs) > 1 {
			dup++
		}
		d := rs[0].at.Sub(at)
		if d < 0 {
			early++
		}
		if d > 100*time.Millisecond {
			over100++
			slowBy[int(at.Sub(t0)/time.Second)]++
			slowIn[rs[0].process]++
		}
		late = append(late, d)
		if !at.Before(stoppedAt) && at.Before(stoppedAt.Add(2*time.Second)) {
			nearRestart = append(nearRestart, d)
		}
	}
	slices.Sort(late)
	slices.Sort(nearRestart)
	pctOf := func(xs []time.Duration, p float64) time.Duration {
		if len(xs) == 0 {
			return 0
		}
		return xs[min(len(xs)-1, int(p*float64(len(xs))))].Round(100 * time.Microsecond)
	}
	pct := func(p float64) time.Duration { return pctOf(late, p) }
	b.ReportMetric(float64(pct(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(pct(0.999).Microseconds())/1000, "p99.9-ms")
	b.ReportMetric(float64(pct(1).Microseconds())/1000, "max-ms")
	b.Logf("%s restart of p1 at %s: fired %d scheduled events in %s (%d failed), lateness p50 %s p99 %s p99.9 %s max %s; over 100ms %d, early %d, lost %d, handled twice %d; due in the 2 s after the restart: %d, p99 %s max %s; load average %s",
		sig, stoppedAt.Sub(t0).Round(time.Millisecond), len(due), firedFor.Round(time.Millisecond), failed,
		pct(0.5), pct(0.99), pct(0.999), pct(1), over100, early, lost, dup,
		len(nearRestart), pctOf(nearRestart, 0.99), pctOf(nearRestart, 1), loadAverage())
	// The mover's own part: the due time to the append to the event's
	// stream, as the broker stamped it (the same host).
	stored := storedAt(b, tg)
	var moved []time.Duration
	entries := 0
	for id, ats := range stored {
		entries += len(ats)
		if at, ok := due[id]; ok {
			moved = append(moved, ats[0].Sub(at.Truncate(time.Millisecond)))
		}
	}
	slices.Sort(moved)
	b.ReportMetric(float64(pctOf(moved, 0.99).Microseconds())/1000, "move-p99-ms")
	b.Logf("due → in the stream (ms resolution): %d entries for %d events, p50 %s p99 %s p99.9 %s max %s",
		entries, len(due), pctOf(moved, 0.5), pctOf(moved, 0.99), pctOf(moved, 0.999), pctOf(moved, 1))
	if entries != len(due) {
		b.Errorf("the stream holds %d entries for %d scheduled events", entries, len(due))
	}
	if over100 > 0 {
		b.Logf("over 100 ms late, by second of the due time since the first Fire: %v; by process: %v", slowBy, slowIn)
	}
	if lost > 0 || early > 0 {
		b.Errorf("%d events lost, %d handled before their due time", lost, early)
	}
	for _, c := range []*child{p1, p2} {
		if err, ok := c.terminate(30 * time.Second); !ok || err != nil {
			b.Errorf("listener on SIGTERM: exited %v, error %v", ok, err)
		}
	}
}

// storedAt returns when the broker appended each event ID to the stream
// of ticked (every copy): Redis's entry ID (milliseconds), JetStream's
// message timestamp.
func storedAt(b *testing.B, tg *target) map[string][]time.Time {
	out := map[string][]time.Time{}
	if tg.kind == "nats" {
		for id, at := range natsStoredAt(b, tg) {
			out[id] = at
		}
		return out
	}
	entries, err := tg.rdb.XRange(context.Background(), tg.stream, "-", "+").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range entries {
		id, _ := e.Values["_watermill_message_uuid"].(string)
		ms, err := strconv.ParseInt(strings.SplitN(e.ID, "-", 2)[0], 10, 64)
		if err != nil {
			continue
		}
		out[id] = append(out[id], time.UnixMilli(ms))
	}
	return out
}

// BenchmarkScheduleIdle measures the CPU that 10 idle buses use with
// their schedule movers (and one listener each) and nothing scheduled:
// the process's user+system CPU time over 10 s, as a percentage of one
// core. On NATS something was scheduled and cancelled first, so that the
// schedule stream exists and the movers contend for the lease (without
// it they only wait for the stream). Run it with
//
//	go test -run '^$' -bench 'ScheduleIdle/redis' -benchtime 1x ./internal/faults/
//	go test -run '^$' -bench 'ScheduleIdle/nats' -benchtime 1x ./internal/faults/
func BenchmarkScheduleIdle(b *testing.B) {
	for _, kind := range []string{"redis", "nats"} {
		b.Run(kind, func(b *testing.B) {
			for range b.N {
				scheduleIdle(b, kind)
			}
		})
	}
}

func scheduleIdle(b *testing.B, kind string) {
	tg := newTarget(b, kind)
	for i := range 10 {
		bu := newBus(b, bus.Config{Service: tg.service, Process: fmt.Sprintf("p%d", i), Transport: tg.url})
		if err := bus.Listen(bu, ticked, listenerName, func(context.Context, bus.Delivery[tick]) error { return nil }); err != nil {
			b.Fatal(err)
		}
		if err := bu.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		if i == 0 && kind == "nats" {
			id, err := bus.Fire(context.Background(), bu, ticked, tick{}, bus.WithDelay(time.Hour))
			if err != nil {
				b.Fatal(err)
			}
			if err := bus.CancelScheduled(context.Background(), bu, id); err != nil {
				b.Fatal(err)
			}
		}
	}
	time.Sleep(time.Second) // let start-up work settle before measuring
	const span = 10 * time.Second
	before := cpuTime()
	time.Sleep(span)
	used := cpuTime() - before
	b.ReportMetric(100*used.Seconds()/span.Seconds(), "%cpu")
	b.Logf("10 idle %s buses: %s of CPU in %s = %.2f%% of one core", kind, used.Round(time.Millisecond), span, 100*used.Seconds()/span.Seconds())
}

// loadAverage is the first three fields of /proc/loadavg.
func loadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
