package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/internal/brokertest"
)

const (
	redisAddr = "127.0.0.1:6379"
	amqpURL   = "amqp://guest:guest@127.0.0.1:5672/"
)

// captureRunNames records the run names of the test's benches.
func captureRunNames(t *testing.T) func() []string {
	var mu sync.Mutex
	var names []string
	testHookRunName = func(n string) {
		mu.Lock()
		names = append(names, n)
		mu.Unlock()
	}
	t.Cleanup(func() { testHookRunName = nil })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), names...)
	}
}

func checkResult(t *testing.T, res *Result, scheme string, events int) {
	t.Helper()
	if res.Transport != scheme || res.Events != events {
		t.Fatalf("result %+v", res)
	}
	sides := []Side{res.Busline, res.Watermill, res.WatermillTuned}
	switch scheme {
	case "memory":
		if res.Raw.Name != "" {
			t.Fatalf("memory has a raw side: %+v", res.Raw)
		}
	case "nats": // measured against watermill-nats defaults only
		sides = sides[:2]
		if res.WatermillTuned.Name != "" || res.Raw.Name != "" {
			t.Fatalf("nats has a tuned or raw side: %+v %+v", res.WatermillTuned, res.Raw)
		}
	default:
		sides = append(sides, res.Raw)
	}
	for _, s := range sides {
		if s.Name == "" || s.FirePerSecond <= 0 || s.EndToEndPerSecond <= 0 || s.P50 <= 0 || s.P99 < s.P50 || s.CPU <= 0 || s.CallMean <= 0 || s.CallP99 < s.CallP50 {
			t.Fatalf("side %+v", s)
		}
	}
	line, err := json.Marshal(res.Summary())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatal(err)
	}
	want := []string{"transport", "events", "size", "busline_events_per_s", "watermill_events_per_s", "ratio", "p50_ms", "p99_ms",
		"busline_cpu_us_per_event", "busline_call_mean_ms"}
	if scheme != "nats" {
		want = append(want, "watermill_tuned_events_per_s", "watermill_tuned_cpu_us_per_event", "watermill_tuned_call_mean_ms")
	}
	if scheme != "memory" && scheme != "nats" {
		want = append(want, "raw_events_per_s", "raw_call_mean_ms", "raw_cpu_us_per_event")
	}
	if res.BrokerPID > 0 {
		want = append(want, "busline_broker_cpu_us_per_event", "watermill_tuned_broker_cpu_us_per_event")
		if scheme != "memory" && scheme != "nats" {
			want = append(want, "raw_broker_cpu_us_per_event")
		}
	}
	if res.Envelope {
		want = append(want, "envelope")
	}
	if len(m) != len(want) {
		t.Fatalf("summary keys %v", m)
	}
	for _, k := range want {
		if _, ok := m[k]; !ok {
			t.Fatalf("summary lacks %s: %s", k, line)
		}
	}
}

func TestRunMemory(t *testing.T) {
	var progress bytes.Buffer
	res, err := Run(context.Background(), Config{Transport: "memory://", Events: 2000, Size: 64, Concurrency: 4, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res, "memory", 2000)
	if !strings.Contains(progress.String(), "handled 2000/2000") {
		t.Fatalf("progress: %q", progress.String())
	}
}

// TestRunBrokerPID reads a "broker's" CPU time around each side: this
// test's own process, whose CPU time getrusage also measures, so the two
// figures must agree (within the /proc clock tick and its accounting).
func TestRunBrokerPID(t *testing.T) {
	res, err := Run(context.Background(), Config{Transport: "memory://", Events: 20000, Size: 64, Concurrency: 4, BrokerPID: os.Getpid()})
	if runtime.GOOS != "linux" {
		if !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("BrokerPID off Linux: %v, want ErrInvalidConfig", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res, "memory", 20000)
	for _, s := range []Side{res.Busline, res.Watermill, res.WatermillTuned} {
		diff := (s.BrokerCPU - s.CPU).Abs()
		if s.BrokerCPU <= 0 || diff > 30*time.Millisecond+s.CPU/4 {
			t.Errorf("%s: broker CPU %s, process CPU %s: the same process, they should agree", s.Name, s.BrokerCPU, s.CPU)
		}
	}
	for _, pid := range []int{-1, 1 << 30} {
		if _, err := Run(context.Background(), Config{Transport: "memory://", Events: 10, BrokerPID: pid}); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("BrokerPID %d: %v, want ErrInvalidConfig", pid, err)
		}
	}
}

// TestRunFireBatch fires in batches on the Busline and Watermill sides;
// 1001 events in batches of 8 leave a short last batch.
func TestRunFireBatch(t *testing.T) {
	res, err := Run(context.Background(), Config{Transport: "memory://", Events: 1001, Size: 64, Concurrency: 3, FireBatch: 8})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res, "memory", 1001)
	if !strings.Contains(res.Busline.Name, "FireBatch of 8") || !strings.Contains(res.WatermillTuned.Name, "Publish of 8") {
		t.Fatalf("side names %q, %q do not say the batch", res.Busline.Name, res.WatermillTuned.Name)
	}
}

func TestRunRedisCleansUp(t *testing.T) {
	need(t, redisAddr, "redis-server --port 6379")
	names := captureRunNames(t)
	res, err := Run(context.Background(), Config{Transport: "redis://" + redisAddr + "/0", Events: 500, Size: 128, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res, "redis", 500)
	c := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer c.Close()
	for _, n := range names() {
		keys, err := c.Keys(context.Background(), n+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) > 0 {
			t.Fatalf("left behind: %v", keys)
		}
	}
}

// TestRunRedisStoreCleansUp runs the Busline side with a Redis dedup store
// and leaves no key of it behind.
func TestRunRedisStoreCleansUp(t *testing.T) {
	need(t, redisAddr, "redis-server --port 6379")
	names := captureRunNames(t)
	res, err := Run(context.Background(), Config{
		Transport: "redis://" + redisAddr + "/0", Idempotency: "redis://" + redisAddr + "/0",
		Events: 300, Size: 64, Concurrency: 4, Sides: []string{SideBusline},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Busline.Name, "redis:// dedup store") {
		t.Fatalf("side %q", res.Busline.Name)
	}
	c := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer c.Close()
	if len(names()) < 2 {
		t.Fatalf("run names %v, want the transport's and the store's", names())
	}
	for _, n := range names() {
		if keys, err := c.Keys(context.Background(), n+"*").Result(); err != nil || len(keys) > 0 {
			t.Fatalf("left behind: %v (%v)", keys, err)
		}
	}
	if _, err := Run(context.Background(), Config{Transport: "memory://", Idempotency: "postgres://x/y"}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("postgres store: %v", err)
	}
}

func TestRunAMQPCleansUp(t *testing.T) {
	need(t, "127.0.0.1:5672", "rabbitmq-server")
	names := captureRunNames(t)
	res, err := Run(context.Background(), Config{Transport: amqpURL, Events: 300, Size: 128, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res, "amqp", 300)
	conn, err := amqp091.Dial(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, n := range names() {
		for _, q := range []string{n + ".bench-sink", n + ".bench-sink.dead", n + ".watermill", n + ".watermill-tuned", n + ".raw", n + "." + n + ".records.owners", n + "." + n + ".records.schemas"} {
			ch, err := conn.Channel()
			if err != nil {
				t.Fatal(err)
			}
			_, err = ch.QueueDeclarePassive(q, true, false, false, false, nil)
			var ae *amqp091.Error
			if !errors.As(err, &ae) || ae.Code != amqp091.NotFound {
				t.Fatalf("queue %s left behind (%v)", q, err)
			}
		}
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		err = ch.ExchangeDeclarePassive(n, "topic", true, false, false, false, nil)
		var ae *amqp091.Error
		if !errors.As(err, &ae) || ae.Code != amqp091.NotFound {
			t.Fatalf("exchange %s left behind (%v)", n, err)
		}
	}
}

// TestRunSides runs only the sides asked for.
func TestRunSides(t *testing.T) {
	res, err := Run(context.Background(), Config{Transport: "memory://", Events: 300, Size: 64, Concurrency: 2, Sides: []string{SideWatermillTuned}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Busline.Name != "" || res.Watermill.Name != "" || res.Raw.Name != "" || res.WatermillTuned.Name == "" {
		t.Fatalf("result %+v", res)
	}
}

// TestRoundsRotate starts each round one side later, over the sides the
// broker has (memory has no raw side), so that no side always runs first.
func TestRoundsRotate(t *testing.T) {
	var progress bytes.Buffer
	if _, err := Run(context.Background(), Config{Transport: "memory://", Events: 100, Size: 64, Concurrency: 2, Rounds: 3, Progress: &progress}); err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, line := range strings.Split(progress.String(), "\n") {
		if name, _, ok := strings.Cut(line, ": fired 100/100, handled 100/100 in"); ok {
			order = append(order, name)
		}
	}
	if len(order) != 9 {
		t.Fatalf("%d sides finished, want 3 rounds of 3:\n%s", len(order), progress.String())
	}
	first := map[string]bool{}
	for r := range 3 {
		first[order[3*r]] = true
		if got := map[string]bool{order[3*r]: true, order[3*r+1]: true, order[3*r+2]: true}; len(got) != 3 {
			t.Fatalf("round %d ran %v", r, order[3*r:3*r+3])
		}
	}
	if len(first) != 3 {
		t.Fatalf("rounds started with %v, want each side first once", order)
	}
}

// TestRounds runs each side twice and reports a round of each.
func TestRounds(t *testing.T) {
	var progress bytes.Buffer
	res, err := Run(context.Background(), Config{Transport: "memory://", Events: 200, Size: 64, Concurrency: 2, Rounds: 2, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res, "memory", 200)
	if n := strings.Count(progress.String(), res.Busline.Name+": fired 200/200, handled 200/200 in"); n != 2 {
		t.Fatalf("%d Busline rounds:\n%s", n, progress.String())
	}
	s := medianSide([]Side{{Name: "c", EndToEndPerSecond: 3}, {Name: "a", EndToEndPerSecond: 1}, {Name: "b", EndToEndPerSecond: 2}})
	if s.Name != "b" {
		t.Fatalf("median %v", s)
	}
}

func TestTunedSubscribers(t *testing.T) {
	c := Config{Concurrency: 16}
	for scheme, want := range map[string]int{"redis": 8, "rediss": 8, "amqp": 1, "amqps": 1, "memory": 16} {
		if got := c.tunedSubscribers(scheme); got != want {
			t.Errorf("%s: %d, want %d", scheme, got, want)
		}
	}
	c.TunedSubscribers = 2
	if got := c.tunedSubscribers("redis"); got != 2 {
		t.Errorf("set: %d", got)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{
		{Transport: "memory://", Sides: []string{"busline", "nope"}},
		{Transport: "memory://", Rounds: -1},
		{Transport: "memory://", Size: 5},
		{Transport: "memory://", Events: -1},
		{Transport: "memory://", Concurrency: -2},
		{Transport: "memory://", FireBatch: -1},
		{Transport: "memory://", FireBatch: 2, Rate: 100},
	} {
		if _, err := Run(context.Background(), c); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: %v", c, err)
		}
	}
	if _, err := Run(context.Background(), Config{Transport: "kafka://x"}); err == nil {
		t.Error("kafka accepted")
	}
}

func TestRunNATSCleansUp(t *testing.T) {
	brokertest.NATS(t)
	names := captureRunNames(t)
	res, err := Run(context.Background(), Config{Transport: brokertest.NATSURL(), Events: 500, Size: 128, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res, "nats", 500)
	nc, err := natsgo.Connect(brokertest.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for name := range js.StreamNames(context.Background()).Name() {
		for _, n := range names() {
			if strings.HasPrefix(name, n) || strings.HasPrefix(name, "KV_"+n) {
				t.Errorf("stream %s left behind", name)
			}
		}
	}
}

func need(t *testing.T, addr, how string) { t.Helper(); brokertest.Reachable(t, addr, how) }
