// Package procs runs listener processes for tests that kill them for real:
// the test binary re-executes itself with EnvChild holding a Spec, and the
// child runs one bus listener (RunChild) that appends a line per handler
// call to a file the parent reads (ReadRecords). internal/faults and the
// bus tier of transports/transporttest share it.
//
// A child is killed with SIGKILL when the test ends, and dies with the
// thread of the test binary that started it (Pdeathsig), so an interrupted
// test leaves no listener behind.
package procs

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/busline/busline/bus"
)

// EnvChild holds the JSON Spec of a listener process: a test binary started
// with it runs one listener (RunChild) instead of its tests.
const EnvChild = "BUSLINE_FAULTS_CHILD"

// Tick is the payload of the events children listen to.
type Tick struct {
	N int `json:"n"`
}

// Ticked is the event children listen to; each test isolates it with its
// own key prefix, exchange and queue prefix, or broker name.
var Ticked = bus.NewEvent[Tick]("faults", "ticked")

// Spec configures a listener process.
type Spec struct {
	Transport       string        `json:"transport"`
	Idempotency     string        `json:"idempotency,omitempty"`
	Service         string        `json:"service"`
	Process         string        `json:"process"`
	Listener        string        `json:"listener"`
	AckTimeout      time.Duration `json:"ack_timeout"`
	Concurrency     int           `json:"concurrency"`
	MaxDeliveries   int           `json:"max_deliveries,omitempty"`
	Work            time.Duration `json:"work"`             // each handler call sleeps this long
	Out             string        `json:"out"`              // file the handler appends its lines to
	Effects         string        `json:"effects"`          // table the Effect function writes to
	Begin           bool          `json:"begin"`            // also write a B line when a handler starts
	ShutdownTimeout time.Duration `json:"shutdown_timeout"` // bus.Config.ShutdownTimeout
}

// Effect is run by a child's handler after its work when Spec.Effects is
// set (internal/faults inserts a row through pgstore.Tx).
type Effect func(ctx context.Context, s Spec, d bus.Delivery[Tick]) error

// Lines of a child's output file, one write each:
//
//	B <event ID> <attempt> <unix ns> <process>   a handler call started (Begin only)
//	H <event ID> <attempt> <unix ns> <process>   a handler call finished its effect and returns nil
//
// Its standard output says "boot <unix ns>" when main starts, "ready <unix
// ns>" once its consumer group exists, and "stopped <unix ns> <error>"
// when the bus stopped.

// RunChild is the main of a listener process: bus.Run until SIGTERM or
// SIGINT, exit status 0 when Run returned nil. effect may be nil.
func RunChild(raw string, effect Effect) int {
	fmt.Printf("boot %d\n", time.Now().UnixNano())
	var s Spec
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
	line := func(kind string, d bus.Delivery[Tick]) {
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
	opts := []bus.ListenOption{bus.WithAckTimeout(s.AckTimeout), bus.WithConcurrency(s.Concurrency)}
	if s.MaxDeliveries > 0 {
		opts = append(opts, bus.WithMaxDeliveries(s.MaxDeliveries))
	}
	err = bus.Listen(b, Ticked, s.Listener, func(ctx context.Context, d bus.Delivery[Tick]) error {
		if s.Begin {
			line("B", d)
		}
		time.Sleep(s.Work)
		if s.Effects != "" && effect != nil {
			if err := effect(ctx, s, d); err != nil {
				return err
			}
		}
		line("H", d)
		return nil
	}, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// bus.Run, with a line once the groups exist.
	if err = b.Start(context.Background()); err == nil {
		fmt.Printf("ready %d\n", time.Now().UnixNano())
		<-ctx.Done()
		err = b.Close()
	} else {
		_ = b.Close()
	}
	fmt.Printf("stopped %d %v\n", time.Now().UnixNano(), err)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: Run:", err)
		return 1
	}
	return 0
}

// Child is a listener process: the test binary re-executed with EnvChild.
type Child struct {
	Spec    Spec
	StartAt time.Time // just before exec

	cmd     *exec.Cmd
	mu      sync.Mutex
	bootAt  time.Time // when its main started (its own clock: the same machine)
	readyAt time.Time // when its group existed
	stopped string    // its "stopped" line, when it printed one
	exited  chan struct{}
	exitErr error
}

// Start starts a listener process running spec; it is killed when the
// test ends if it still runs. Its standard error goes to the test's.
// testRun is the -test.run pattern of the child: "^$" for a test binary
// whose TestMain runs RunChild when EnvChild is set, or the pattern of a
// test that does it itself.
func Start(t testing.TB, spec Spec, testRun string) *Child {
	t.Helper()
	if spec.Listener == "" {
		spec.Listener = "work"
	}
	if spec.Concurrency == 0 {
		spec.Concurrency = 8
	}
	if spec.AckTimeout == 0 {
		spec.AckTimeout = time.Minute
	}
	if spec.ShutdownTimeout == 0 {
		spec.ShutdownTimeout = 20 * time.Second
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run="+testRun)
	cmd.Env = append(os.Environ(), EnvChild+"="+string(raw))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &Child{Spec: spec, cmd: cmd, exited: make(chan struct{})}
	c.StartAt = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) >= 2 && (f[0] == "boot" || f[0] == "ready" || f[0] == "stopped") {
				ns, _ := strconv.ParseInt(f[1], 10, 64)
				c.mu.Lock()
				switch f[0] {
				case "boot":
					c.bootAt = time.Unix(0, ns)
				case "ready":
					c.readyAt = time.Unix(0, ns)
				default:
					c.stopped = sc.Text()
				}
				c.mu.Unlock()
			}
		}
		err := cmd.Wait()
		c.mu.Lock()
		c.exitErr = err
		c.mu.Unlock()
		close(c.exited)
	}()
	t.Cleanup(c.Kill)
	return c
}

// Kill sends SIGKILL and waits for the process to be gone.
func (c *Child) Kill() {
	select {
	case <-c.exited:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.exited
}

// Terminate sends SIGTERM and waits at most within for the process to
// exit; it returns the exit error (nil: status 0) and whether it exited.
func (c *Child) Terminate(within time.Duration) (error, bool) {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.exitErr, true
	case <-time.After(within):
		return nil, false
	}
}

// Boot is when the child's main started; zero until it said so.
func (c *Child) Boot() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bootAt
}

// Ready is when the child's consumer group existed; zero until it said so.
func (c *Child) Ready() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readyAt
}

// Exited reports whether the process has exited.
func (c *Child) Exited() bool {
	select {
	case <-c.exited:
		return true
	default:
		return false
	}
}

// Record is one line of a child's output file.
type Record struct {
	Kind    string // "B" or "H"
	ID      string
	Attempt int
	At      time.Time
	Process string
}

// ReadRecords reads the records of the files, in file order.
func ReadRecords(t testing.TB, files ...string) []Record {
	t.Helper()
	var out []Record
	for _, name := range files {
		f, err := os.Open(name)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			p := strings.Fields(sc.Text())
			if len(p) != 5 {
				continue // cannot happen with whole-line writes; tolerate it anyway
			}
			n, _ := strconv.Atoi(p[2])
			ns, _ := strconv.ParseInt(p[3], 10, 64)
			out = append(out, Record{Kind: p[0], ID: p[1], Attempt: n, At: time.Unix(0, ns), Process: p[4]})
		}
		_ = f.Close()
	}
	return out
}

// CountLines counts the lines of kind ("B" or "H") of the files without
// parsing them all.
func CountLines(kind string, files ...string) int {
	n := 0
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, kind+" ") {
				n++
			}
		}
	}
	return n
}

// OutFile is the output file of a child within dir.
func OutFile(dir, name string) string { return filepath.Join(dir, name+".out") }
