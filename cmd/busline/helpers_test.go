package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/internal/brokertest"
	"github.com/busline/busline/internal/syncbuf"
	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/amqp"
	"github.com/busline/busline/transports/memory"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const (
	redisAddr = "127.0.0.1:6379"
	amqpAddr  = "127.0.0.1:5672"
)

// result is what one run of the command printed and returned.
type result struct {
	code           int
	stdout, stderr string
}

// cleanEnv keeps the environment of the developer out of the command.
func cleanEnv(t *testing.T) {
	for _, k := range []string{"BUSLINE_TRANSPORT", "BUSLINE_CONFIG", "BUSLINE_SERVICE", "BUSLINE_PROCESS", "BUSLINE_IDEMPOTENCY"} {
		t.Setenv(k, "")
	}
}

// run executes the command in process with args and returns its output.
func run(t *testing.T, args ...string) result {
	t.Helper()
	return runIn(t, context.Background(), "", args...)
}

func runIn(t *testing.T, ctx context.Context, stdin string, args ...string) result {
	t.Helper()
	var out, errb syncbuf.Buffer
	code := execute(ctx, args, strings.NewReader(stdin), &out, &errb)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// expect fails the test unless the run exited with code.
func (r result) expect(t *testing.T, code int) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	return r
}

// broker is one real broker a test runs the command against, under names
// of its own.
type broker struct {
	name string // memory, redis, amqp
	url  string
	run  string // the random name of the test's keys, queues, exchange
}

// brokers returns the brokers reachable here, each isolated for t and
// cleaned up when t ends. An unreachable one is skipped (a subtest says
// how to start it), or fails the test when BUSLINE_REQUIRE_BROKERS=1.
func brokers(t *testing.T) []broker {
	return []broker{memoryBroker(t), redisBroker(t), amqpBroker(t)}
}

func randomName() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "clitest-" + hex.EncodeToString(b)
}

func memoryBroker(t *testing.T) broker {
	n := randomName()
	t.Cleanup(func() { memory.Forget(n) })
	return broker{name: "memory", url: "memory://" + n, run: n}
}

func redisBroker(t *testing.T) broker {
	n := randomName()
	t.Cleanup(func() {
		c := redis.NewClient(&redis.Options{Addr: redisAddr})
		defer c.Close()
		ctx := context.Background()
		keys, _ := c.Keys(ctx, n+":*").Result()
		if len(keys) > 0 {
			c.Del(ctx, keys...)
		}
	})
	return broker{name: "redis", url: "redis://" + redisAddr + "/0?prefix=" + n + ":", run: n}
}

func amqpBroker(t *testing.T) broker {
	n := randomName()
	t.Cleanup(func() { cleanAMQP(n) })
	return broker{name: "amqp", url: "amqp://guest:guest@" + amqpAddr + "/?exchange=" + n + "&queue_prefix=" + n + ".", run: n}
}

// testGroups are the consumer groups tests create.
var testGroups = []string{"shop-email", "shop-audit", "alerts-notify"}

// cleanAMQP deletes the queues of testGroups under prefix run and the exchange run.
func cleanAMQP(run string) {
	conn, err := amqp091.Dial("amqp://guest:guest@" + amqpAddr + "/")
	if err != nil {
		return
	}
	defer conn.Close()
	// The record queues every Start writes to: group owners, schemas.
	queues := []string{run + "." + run + ".records.owners", run + "." + run + ".records.schemas"}
	for _, g := range testGroups {
		q := run + "." + g
		queues = append(queues, q, q+".dead")
		for _, step := range amqp.DefaultRetryLadder {
			queues = append(queues, q+".retry."+stepLabel(step))
		}
	}
	for _, q := range queues {
		ch, err := conn.Channel()
		if err != nil {
			return
		}
		if _, err := ch.QueueDeclarePassive(q, true, false, false, false, nil); err == nil {
			_, _ = ch.QueueDelete(q, false, false, false)
		}
		_ = ch.Close()
	}
	if ch, err := conn.Channel(); err == nil {
		_ = ch.ExchangeDelete(run, false, false)
		_ = ch.Close()
	}
}

func stepLabel(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strings.TrimSuffix(d.String(), "0m0s")
	case d%time.Minute == 0:
		return strings.TrimSuffix(d.String(), "0s")
	}
	return d.String()
}

// available skips (or fails) the subtest when b's broker is unreachable.
func (b broker) available(t *testing.T) {
	t.Helper()
	addr, how := "", ""
	switch b.name {
	case "redis":
		addr, how = redisAddr, "redis-server --port 6379"
	case "amqp":
		addr, how = amqpAddr, "rabbitmq-server (guest/guest on 5672)"
	default:
		return
	}
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		_ = c.Close()
		return
	}
	brokertest.Unavailable(t, fmt.Sprintf("%s unreachable (%v); start it with: %s", addr, err, how))
}

// eachBroker runs fn as a subtest per reachable broker.
func eachBroker(t *testing.T, fn func(t *testing.T, b broker)) {
	cleanEnv(t)
	for _, b := range brokers(t) {
		t.Run(b.name, func(t *testing.T) {
			b.available(t)
			fn(t, b)
		})
	}
}

// Order is the payload of the test event.
type Order struct {
	ID   int  `json:"id"`
	Fail bool `json:"fail,omitempty"`
}

var ordersPlaced = bus.NewEvent[Order]("orders", "placed")

// shop is a service with a listener "email" on orders.placed that
// dead-letters orders marked Fail (until accept is set) and records the
// IDs of the events it handled.
type shop struct {
	*bus.Bus
	accept  chan struct{} // closed: Fail orders succeed too
	acceptO sync.Once
	mu      sync.Mutex
	handled map[string]int // event ID -> handler calls that succeeded
	block   chan struct{}  // when not nil, handlers wait for it to close
	started chan string    // receives the event ID when a handler starts, if not nil
}

func newShop(t *testing.T, b broker, opts ...func(*shop)) *shop {
	t.Helper()
	bs, err := bus.New(bus.Config{
		Service: "shop", Process: "p1", Transport: b.url,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	s := &shop{Bus: bs, accept: make(chan struct{}), handled: map[string]int{}}
	for _, o := range opts {
		o(s)
	}
	err = bus.Listen(bs, ordersPlaced, "email", func(ctx context.Context, d bus.Delivery[Order]) error {
		if s.started != nil {
			s.started <- d.ID
		}
		if s.block != nil {
			<-s.block
		}
		if d.Payload.Fail {
			select {
			case <-s.accept:
			default:
				return bus.Permanent(errors.New("order refused by the mail server"))
			}
		}
		s.mu.Lock()
		s.handled[d.ID]++
		s.mu.Unlock()
		return nil
	}, bus.WithConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := bs.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bs.Close() })
	return s
}

func (s *shop) fire(t *testing.T, o Order) string {
	t.Helper()
	id, err := bus.Fire(context.Background(), s.Bus, ordersPlaced, o)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (s *shop) handledCount(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handled[id]
}

func (s *shop) acceptAll() { s.acceptO.Do(func() { close(s.accept) }) }

// deadLetters lists the dead letters of group through the transport.
func (s *shop) deadLetters(t *testing.T, group string) []transports.DeadLetter {
	t.Helper()
	list, err := s.Transport().(transports.DeadLetterStore).DeadLetters(context.Background(), group, 0)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// eventually polls cond until it holds or 15 seconds passed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var normalizers = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`), "<UUID>"},
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`), "<TIME>"},
	{regexp.MustCompile(`\b\d{13}-\d+\b`), "<ENTRY>"},
	{regexp.MustCompile(`clitest-[0-9a-f]{8}`), "<RUN>"},
	{regexp.MustCompile(`(^|\s)(\d+ms|\d+\.\ds|\d+m\d\ds|\d+h\d\dm|\d+d\d\dh)(\s|$)`), "$1<AGE>$3"},
}

// normalize replaces what changes from run to run (IDs, times, ages,
// random names) and collapses column padding, whose width follows them.
func normalize(s string) string {
	for _, n := range normalizers {
		s = n.re.ReplaceAllString(s, n.with)
		s = n.re.ReplaceAllString(s, n.with) // adjacent matches share a separator
	}
	lines := strings.Split(s, "\n")
	pad := regexp.MustCompile(` {2,}`)
	for i, l := range lines {
		lines[i] = strings.TrimRight(pad.ReplaceAllString(l, "  "), " ")
	}
	return strings.Join(lines, "\n")
}

// golden compares normalize(got) with testdata/name.golden (-update writes it).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	norm := normalize(got)
	if *update {
		if err := os.WriteFile(path, []byte(norm), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != norm {
		t.Errorf("%s differs (go test -update rewrites it)\ngot:\n%s\nwant:\n%s\nraw:\n%s", path, norm, want, got)
	}
}

// checkAligned fails unless every line of each table (runs of non-empty
// lines whose first line is an all-caps header) starts its columns where
// the header starts them.
func checkAligned(t *testing.T, out string) {
	t.Helper()
	header := regexp.MustCompile(`^[A-Z][A-Z /:.-]*(  +[A-Z][A-Z /:.-]*)+$`)
	var cols []int
	for _, line := range strings.Split(out, "\n") {
		switch {
		case line == "":
			cols = nil
		case header.MatchString(strings.TrimSpace(line)) && strings.TrimSpace(line) == strings.TrimRight(line, " "):
			cols = columnStarts(line)
		case cols != nil:
			for _, c := range cols[1:] {
				if c >= len(line) || line[c-1] != ' ' || line[c] == ' ' {
					t.Errorf("column at %d not aligned in %q", c, line)
					break
				}
			}
		}
	}
}

func columnStarts(header string) []int {
	var out []int
	for i := range header {
		if header[i] != ' ' && (i == 0 || (i >= 2 && header[i-1] == ' ' && header[i-2] == ' ')) {
			out = append(out, i)
		}
	}
	return out
}
