package faults

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/busline/busline/bus"
)

// soakEvents is the number of events a soak run pushes: 1,000,000, or
// BUSLINE_SOAK_EVENTS.
func soakEvents() int {
	if v, err := strconv.Atoi(os.Getenv("BUSLINE_SOAK_EVENTS")); err == nil && v > 0 {
		return v
	}
	return 1_000_000
}

// BenchmarkSoak pushes soakEvents events through a listener (the default
// chain without the idempotency store, whose memory grows with the events
// it remembers by design, Concurrency 16) on the memory and the Redis
// transports, fired by 32 goroutines that never run more than soakMaxLag
// events ahead of the listener, and reports the peak RSS of the
// process, the RSS after each quarter of the events, and the goroutine
// count before, at the peak, and after the buses closed. Run it with
//
//	go test -run '^$' -bench Soak -benchtime 1x ./internal/faults/
func BenchmarkSoak(b *testing.B) {
	for _, kind := range []string{"memory", "redis"} {
		b.Run(kind, func(b *testing.B) {
			for range b.N {
				soak(b, kind, soakEvents())
			}
		})
	}
}

// soakMaxLag bounds how far the firers run ahead of the listener.
const soakMaxLag = 50_000

func soak(b *testing.B, kind string, n int) {
	b.StopTimer()
	var tg *target
	if kind == "redis" {
		tg = redisTarget(b, "", "")
	} else {
		tg = memoryTarget(b)
	}
	debug.FreeOSMemory()
	goBefore := runtime.NumGoroutine()
	rssBefore := procStatus("VmRSS")
	resetPeakRSS()

	var handled atomic.Int64
	quarter := make([]int64, 4) // RSS in kB after each quarter
	lb, err := bus.New(bus.Config{Service: tg.service, Process: "soak", Transport: tg.url, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	err = bus.Listen(lb, ticked, listenerName, func(ctx context.Context, d bus.Delivery[tick]) error {
		handled.Add(1)
		return nil
	}, bus.WithConcurrency(16), bus.WithoutIdempotency())
	if err != nil {
		b.Fatal(err)
	}
	if err := lb.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	pub, err := bus.New(bus.Config{Service: tg.service, Process: "soak-pub", Transport: tg.url, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}

	// Sample RSS and goroutines while it runs.
	var peakGo atomic.Int64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		q := 0
		for {
			peakGo.Store(max(peakGo.Load(), int64(runtime.NumGoroutine())))
			for q < 4 && handled.Load() >= int64(n)*int64(q+1)/4 {
				quarter[q] = procStatus("VmRSS")
				q++
			}
			select {
			case <-stopSampling:
				return
			case <-t.C:
			}
		}
	}()

	b.StartTimer()
	start := time.Now()
	const firers = 32
	var wg sync.WaitGroup
	var fireErrs atomic.Int64
	for w := range firers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += firers {
				// Keep the group's lag under the retention (100,000 per
				// event on both transports): a group further behind loses
				// the oldest events it had not read, by design.
				for int64(i)-handled.Load() > soakMaxLag {
					time.Sleep(time.Millisecond)
				}
				if _, err := bus.Fire(context.Background(), pub, ticked, tick{N: i}); err != nil {
					fireErrs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	last, lastAt := handled.Load(), time.Now()
	for handled.Load() < int64(n)-fireErrs.Load() {
		if h := handled.Load(); h != last {
			last, lastAt = h, time.Now()
		} else if time.Since(lastAt) > 30*time.Second {
			b.Fatalf("%d of %d events handled, none for 30s", h, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	close(stopSampling)
	<-sampled
	quarter[3] = procStatus("VmRSS")
	peak := procStatus("VmHWM")
	streamLen := int64(-1)
	if tg.rdb != nil {
		streamLen, _ = tg.rdb.XLen(context.Background(), tg.stream).Result()
	}
	_ = pub.Close()
	_ = lb.Close()
	// Goroutines of the closed buses exit on their own; give them a moment.
	var goAfter int
	for end := time.Now().Add(5 * time.Second); ; {
		runtime.GC()
		goAfter = runtime.NumGoroutine()
		if goAfter <= goBefore || time.Now().After(end) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)

	if fireErrs.Load() > 0 {
		b.Errorf("%d Fire calls failed", fireErrs.Load())
	}
	if goAfter > goBefore {
		b.Errorf("%d goroutines after the buses closed, %d before: a leak", goAfter, goBefore)
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(peak)/1024, "peak-RSS-MB")
	b.ReportMetric(float64(goBefore), "goroutines-before")
	b.ReportMetric(float64(peakGo.Load()), "goroutines-peak")
	b.ReportMetric(float64(goAfter), "goroutines-after")
	q := make([]string, 4)
	for i, kb := range quarter {
		q[i] = fmt.Sprintf("%dMB", kb/1024)
	}
	b.Logf("%s: %d events in %s (%.0f/s); RSS before %dMB, after each quarter %s, peak %dMB; heap in use after close %dMB; goroutines before %d, peak %d, after close %d; stream length at the end %d",
		kind, n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), rssBefore/1024, strings.Join(q, " "),
		peak/1024, ms.HeapInuse>>20, goBefore, peakGo.Load(), goAfter, streamLen)
}

// procStatus returns a kB field of /proc/self/status (VmRSS, VmHWM), or 0.
func procStatus(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		return kb
	}
	return 0
}

// resetPeakRSS resets VmHWM to the current RSS (Linux 4.0+), so that the
// peak measured is this run's.
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}
