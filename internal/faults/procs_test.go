package faults

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// child is a listener process: the test binary re-executed with envChild.
type child struct {
	t       testing.TB
	spec    childSpec
	cmd     *exec.Cmd
	startAt time.Time // just before exec

	mu      sync.Mutex
	bootAt  time.Time // when its main started (its own clock: the same machine)
	stopped string    // its "stopped" line, when it printed one
	exited  chan struct{}
	exitErr error
}

// startChild starts a listener process; it is killed when the test ends
// if it still runs. Its standard error goes to the test's.
func startChild(t testing.TB, spec childSpec) *child {
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
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"="+string(raw))
	cmd.Stderr = os.Stderr
	// The child dies with the test binary's thread that started it, so
	// that an interrupted test leaves no listener behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{t: t, spec: spec, cmd: cmd, exited: make(chan struct{})}
	c.startAt = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) >= 2 && (f[0] == "boot" || f[0] == "stopped") {
				ns, _ := strconv.ParseInt(f[1], 10, 64)
				c.mu.Lock()
				if f[0] == "boot" {
					c.bootAt = time.Unix(0, ns)
				} else {
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
	t.Cleanup(func() { c.kill() })
	return c
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *child) kill() {
	select {
	case <-c.exited:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.exited
}

// terminate sends SIGTERM and waits at most within for the process to
// exit; it returns the exit error (nil: status 0) and whether it exited.
func (c *child) terminate(within time.Duration) (error, bool) {
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

func (c *child) boot() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bootAt
}

// record is one line of a child's output file.
type record struct {
	kind    string // "B" or "H"
	id      string
	attempt int
	at      time.Time
	process string
}

// readRecords reads the records of the files, in file order.
func readRecords(t testing.TB, files ...string) []record {
	t.Helper()
	var out []record
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
			out = append(out, record{kind: p[0], id: p[1], attempt: n, at: time.Unix(0, ns), process: p[4]})
		}
		_ = f.Close()
	}
	return out
}

// countHandled counts the H lines of the files without parsing them all.
func countHandled(files ...string) int {
	n := 0
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "H ") {
				n++
			}
		}
	}
	return n
}

// handledBy groups the H records by event ID.
func handledBy(recs []record) map[string][]record {
	m := map[string][]record{}
	for _, r := range recs {
		if r.kind == "H" {
			m[r.id] = append(m[r.id], r)
		}
	}
	return m
}

// outFile is the output file of a child within the test's temp dir.
func outFile(dir, name string) string { return filepath.Join(dir, name+".out") }

// waitFor polls cond every 10ms until it holds or within passes.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
