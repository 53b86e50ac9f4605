package brokertest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// NATSServer is a nats-server process a test starts on a loopback port of
// its own, with JetStream keeping its file store in a directory of its
// own, so that the test can kill it and start it again on the same port
// and data without touching the shared server.
type NATSServer struct {
	bin  string
	args []string
	port int
	dir  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd exited
}

// StartNATSServer starts a private nats-server (JetStream on, file store
// in a temp dir, plus args) and returns once it accepts connections; it is
// killed when the test ends. Without nats-server on PATH it calls
// Unavailable.
func StartNATSServer(t testing.TB, args ...string) *NATSServer {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nats-server"); serr != nil {
			Unavailable(t, "nats-server is not on PATH: install it (apt-get install nats-server) to run the NATS restart tests")
		}
		bin = "/usr/sbin/nats-server"
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	s := &NATSServer{bin: bin, args: args, port: port, dir: t.TempDir()}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(syscall.SIGKILL) })
	return s
}

// Addr is the server's host:port.
func (s *NATSServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// URL is the server's nats:// URL.
func (s *NATSServer) URL() string { return "nats://" + s.Addr() }

// Start starts the server (again) on its port and store and returns once
// it accepts connections (nats-server recovers its JetStream store before
// it listens for clients).
func (s *NATSServer) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		cmd := exec.Command(s.bin, append([]string{"-a", "127.0.0.1", "-p", strconv.Itoa(s.port),
			"-js", "-sd", s.dir, "-l", filepath.Join(s.dir, "nats.log")}, s.args...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("brokertest: start nats-server: %w", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		if s.accepting(exited, deadline) {
			s.cmd, s.exited = cmd, exited
			return nil
		}
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.dir, "nats.log"))
			return fmt.Errorf("brokertest: nats-server does not start on %s: %s", s.Addr(), log)
		}
		time.Sleep(100 * time.Millisecond) // the old socket may still hold the port
	}
}

// accepting waits until the server accepts a connection; false when it
// exited or the deadline passed.
func (s *NATSServer) accepting(exited chan struct{}, deadline time.Time) bool {
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// Stop sends sig to the server and waits for it to exit.
func (s *NATSServer) Stop(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}
