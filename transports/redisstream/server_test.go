package redisstream

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisServer is a redis-server process a test starts on a loopback port
// of its own, with an append-only file (fsync always) in a temp dir, so
// that it can be killed and restarted without losing acknowledged writes.
type redisServer struct {
	t    testing.TB
	port int
	dir  string
	mu   sync.Mutex
	cmd  *exec.Cmd
}

var (
	serversMu sync.Mutex
	servers   = map[string]*redisServer{} // by address
)

// startRedisServer starts a private redis-server, stopped when the test ends.
func startRedisServer(t testing.TB) *redisServer {
	t.Helper()
	_, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not on PATH: install Redis to run the reconnect test")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	s := &redisServer{t: t, port: port, dir: t.TempDir()}
	s.start()
	serversMu.Lock()
	servers[s.addr()] = s
	serversMu.Unlock()
	t.Cleanup(func() {
		s.stop()
		serversMu.Lock()
		delete(servers, s.addr())
		serversMu.Unlock()
	})
	return s
}

func (s *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *redisServer) start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd := exec.Command("redis-server",
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "",
		"--protected-mode", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	s.cmd = cmd
	c := redis.NewClient(&redis.Options{Addr: s.addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on %s not ready: %v", s.addr(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill stops the server at once (SIGKILL), as a crash would.
func (s *redisServer) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

func (s *redisServer) stop() { s.kill() }

// restart kills the server and starts it again on the same port and data.
func (s *redisServer) restart() {
	s.kill()
	s.start()
}

// restartServerOf restarts the private server behind a redis:// URL.
func restartServerOf(t testing.TB, rawURL string) {
	t.Helper()
	cfg, err := parseURLString(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	serversMu.Lock()
	s := servers[cfg.single.Addr]
	serversMu.Unlock()
	if s == nil {
		t.Fatalf("no private redis-server behind %s", rawURL)
	}
	s.restart()
}

// serverURL returns a redis:// URL of s with a key prefix of its own.
func (s *redisServer) url(query string) string {
	u := fmt.Sprintf("redis://%s/0?prefix=bltest-%s:", s.addr(), randomHex(4))
	if query != "" {
		u += "&" + query
	}
	return u
}
