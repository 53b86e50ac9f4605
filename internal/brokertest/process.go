package brokertest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("brokertest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ErrExited: the server process exited before it was ready.
var ErrExited = errors.New("brokertest: the server exited before it was ready")

// Process is a broker process a test runs on a loopback port of its own
// and can stop and start again on the same port and data: the common
// part of the private Redis, PostgreSQL and NATS servers of the tests.
// Set the fields, then call Start. It is safe for concurrent use.
type Process struct {
	// Name names the server in errors ("redis-server").
	Name string
	// Port is the server's loopback port.
	Port int
	// Command returns the command of one start; it runs with
	// Pdeathsig SIGKILL added, so the server dies with the test.
	Command func() *exec.Cmd
	// Ready probes the server once; nil means it serves.
	Ready func() error
	// Log is the server's log file: the tail is quoted in start errors,
	// and with CaptureOutput the process's stdout and stderr go there.
	Log           string
	CaptureOutput bool
	// StartTimeout bounds Start, StopTimeout the wait for the signal of
	// Stop to end the process (then it is killed).
	StartTimeout, StopTimeout time.Duration
	// RetryPause is the wait before starting again after the process
	// exited at once (the previous process may still hold the port).
	RetryPause time.Duration

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd exited
}

// Addr is the server's host:port.
func (p *Process) Addr() string { return "127.0.0.1:" + strconv.Itoa(p.Port) }

// Running reports whether the server process is running.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

// Start starts the server (again) unless it runs, and returns once Ready
// says it serves. A process that exits before it is ready is started
// again until StartTimeout has passed.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return nil
	}
	deadline := time.Now().Add(p.StartTimeout)
	for {
		cmd := p.Command()
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
		var log *os.File
		if p.CaptureOutput && p.Log != "" {
			f, err := os.OpenFile(p.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
			if err != nil {
				return fmt.Errorf("brokertest: %s log: %w", p.Name, err)
			}
			log, cmd.Stdout, cmd.Stderr = f, f, f
		}
		err := cmd.Start()
		if log != nil {
			_ = log.Close() // the process has its own descriptor
		}
		if err != nil {
			return fmt.Errorf("brokertest: start %s: %w", p.Name, err)
		}
		exited := make(chan struct{})
		var waitErr error
		go func() { waitErr = cmd.Wait(); close(exited) }()
		err = p.await(exited, deadline)
		if err == nil {
			p.cmd, p.exited = cmd, exited
			return nil
		}
		_ = cmd.Process.Kill()
		<-exited
		if errors.Is(err, ErrExited) {
			err = fmt.Errorf("%w (%v)", err, waitErr)
		}
		if !errors.Is(err, ErrExited) || time.Now().After(deadline) {
			return fmt.Errorf("brokertest: %s on %s: %w%s", p.Name, p.Addr(), err, p.logTail())
		}
		time.Sleep(p.RetryPause)
	}
}

// await probes Ready until it succeeds, the process exits or the deadline
// passes.
func (p *Process) await(exited <-chan struct{}, deadline time.Time) error {
	for {
		select {
		case <-exited:
			return ErrExited
		default:
		}
		err := p.Ready()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *Process) logTail() string {
	if p.Log == "" {
		return ""
	}
	b, _ := os.ReadFile(p.Log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return fmt.Sprintf(" (log %s: %s)", p.Log, b)
}

// Stop sends sig to the server and waits until the process has exited,
// killing it after StopTimeout. Stop on a stopped server does nothing.
func (p *Process) Stop(sig os.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(p.StopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd = nil
}
