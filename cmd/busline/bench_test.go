package main

import (
	"encoding/json"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestBench runs a small benchmark on each broker: the table for people,
// and with --json a last line that is exactly the summary object.
func TestBench(t *testing.T) {
	eachBroker(t, func(t *testing.T, b broker) {
		url := strings.Split(b.url, "?")[0] // bench isolates itself
		r := run(t, "--transport", url, "bench", "--events", "300", "--size", "64", "--concurrency", "4").expect(t, exitOK)
		numbers := regexp.MustCompile(`\b\d+(\.\d+)?x?\b`)
		table := r.stdout[strings.Index(r.stdout, "\n\n")+2:]
		golden(t, "bench_"+b.name, numbers.ReplaceAllString(table, "<N>"))
		if !strings.Contains(r.stdout, "300 events of 64 bytes, concurrency 4") || strings.Contains(r.stdout, "guest:guest") {
			t.Fatalf("stdout:\n%s", r.stdout)
		}
		if !strings.Contains(r.stderr, "handled 300/300") {
			t.Fatalf("no progress on stderr: %q", r.stderr)
		}

		r = run(t, "--transport", url, "--json", "bench", "--events", "200", "--size", "32", "--concurrency", "2").expect(t, exitOK)
		lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
		var sum map[string]any
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
			t.Fatalf("last line %q: %v", lines[len(lines)-1], err)
		}
		keys := []string{"transport", "events", "size", "busline_events_per_s", "watermill_events_per_s", "ratio", "p50_ms", "p99_ms",
			"watermill_tuned_events_per_s", "busline_cpu_us_per_event", "watermill_tuned_cpu_us_per_event"}
		if b.name != "memory" {
			keys = append(keys, "raw_events_per_s", "raw_cpu_us_per_event")
		}
		calls := []string{"busline_call_mean_ms", "watermill_tuned_call_mean_ms"}
		if b.name != "memory" {
			calls = append(calls, "raw_call_mean_ms")
		}
		checkKeys(t, sum, append(keys, calls...)...)
		if sum["transport"] != b.name || sum["events"] != 200.0 || sum["size"] != 32.0 {
			t.Fatalf("summary %v", sum)
		}
		for _, k := range keys[3:] {
			if v, ok := sum[k].(float64); !ok || v <= 0 {
				t.Errorf("%s = %v", k, sum[k])
			}
		}
	})
}

func TestBenchUsage(t *testing.T) {
	cleanEnv(t)
	run(t, "bench", "--size", "3").expect(t, exitUsage)
	run(t, "bench", "--events", "0").expect(t, exitUsage)
	run(t, "bench", "--concurrency", "-1").expect(t, exitUsage)
	run(t, "bench", "--events", "x").expect(t, exitUsage)
	run(t, "bench", "--sides", "busline,nope").expect(t, exitUsage)
	run(t, "bench", "--rounds", "-1").expect(t, exitUsage)
	run(t, "bench", "--raw-batch", "-1").expect(t, exitUsage)
	run(t, "bench", "--fire-batch", "-1").expect(t, exitUsage)
	run(t, "bench", "--broker-pid", "-1").expect(t, exitUsage)
	run(t, "bench", "--broker-pid", "1073741824").expect(t, exitUsage) // no such process
	run(t, "--transport", "redis://127.0.0.1:1/0", "bench").expect(t, exitUnavailable)
}

// TestBenchBrokerPID reports a broker process's CPU per event in a column
// and in the JSON keys; the "broker" here is this test's own process.
func TestBenchBrokerPID(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("--broker-pid reads /proc: Linux only")
	}
	cleanEnv(t)
	pid := strconv.Itoa(os.Getpid())
	r := run(t, "--transport", "memory://", "bench", "--events", "2000", "--size", "64", "--concurrency", "2", "--broker-pid", pid).expect(t, exitOK)
	if !strings.Contains(r.stdout, "BROKER CPU µS/EVENT") {
		t.Fatalf("no broker column:\n%s", r.stdout)
	}
	r = run(t, "--transport", "memory://", "--json", "bench", "--events", "2000", "--size", "64", "--concurrency", "2", "--broker-pid", pid).expect(t, exitOK)
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	var sum map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatalf("last line %q: %v", lines[len(lines)-1], err)
	}
	for _, k := range []string{"busline_broker_cpu_us_per_event", "watermill_tuned_broker_cpu_us_per_event"} {
		if _, ok := sum[k].(float64); !ok {
			t.Errorf("summary lacks %s: %v", k, sum)
		}
	}
}
