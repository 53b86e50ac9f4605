package brokertest

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// NATSServer is a nats-server process a test starts on a loopback port of
// its own, with JetStream keeping its file store in a directory of its
// own, so that the test can kill it and start it again on the same port
// and data without touching the shared server. Start, Stop, Running and
// Addr are those of Process.
type NATSServer struct {
	Process
	dir string
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
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	s := &NATSServer{dir: t.TempDir()}
	s.Process = Process{
		Name: "nats-server", Port: port, Log: filepath.Join(s.dir, "nats.log"),
		StartTimeout: 15 * time.Second, StopTimeout: 15 * time.Second, RetryPause: 100 * time.Millisecond,
		Command: func() *exec.Cmd {
			// nats-server recovers its JetStream store before it listens
			// for clients.
			return exec.Command(bin, append([]string{"-a", "127.0.0.1", "-p", strconv.Itoa(port),
				"-js", "-sd", s.dir, "-l", s.Log}, args...)...)
		},
		Ready: s.accepting,
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(syscall.SIGKILL) })
	return s
}

// URL is the server's nats:// URL.
func (s *NATSServer) URL() string { return "nats://" + s.Addr() }

// accepting reports whether the server accepts a connection.
func (s *NATSServer) accepting() error {
	c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond)
	if err != nil {
		return err
	}
	return c.Close()
}
