package redisstream

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"

	"github.com/busline/busline/internal/faults"
)

// redisServer is a redis-server process a test starts on a loopback port
// of its own (faults.RedisServer: an append-only file, fsync always, in a
// temp dir), so that it can be killed and restarted without losing
// acknowledged writes.
type redisServer struct {
	*faults.RedisServer
	t testing.TB
}

var (
	serversMu sync.Mutex
	servers   = map[string]*redisServer{} // by address
)

// startRedisServer starts a private redis-server, stopped when the test ends.
func startRedisServer(t testing.TB) *redisServer {
	t.Helper()
	rs, err := faults.StartRedisServer(t.TempDir())
	if errors.Is(err, faults.ErrNoRedisServer) {
		t.Skip("redis-server not on PATH: install Redis to run the reconnect test")
	}
	if err != nil {
		t.Fatal(err)
	}
	s := &redisServer{RedisServer: rs, t: t}
	serversMu.Lock()
	servers[s.Addr()] = s
	serversMu.Unlock()
	t.Cleanup(func() {
		s.kill()
		serversMu.Lock()
		delete(servers, s.Addr())
		serversMu.Unlock()
	})
	return s
}

// start starts the server again on its port and data.
func (s *redisServer) start() {
	s.t.Helper()
	if err := s.Start(); err != nil {
		s.t.Fatal(err)
	}
}

// kill stops the server at once (SIGKILL), as a crash would.
func (s *redisServer) kill() { s.Stop(syscall.SIGKILL) }

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

// url returns a redis:// URL of s with a key prefix of its own.
func (s *redisServer) url(query string) string {
	u := fmt.Sprintf("redis://%s/0?prefix=bltest-%s:", s.Addr(), randomHex(4))
	if query != "" {
		u += "&" + query
	}
	return u
}
