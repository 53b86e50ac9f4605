package faults

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/internal/brokertest"
)

// ErrNoRedisServer is returned by StartRedisServer when redis-server is not on PATH.
var ErrNoRedisServer = errors.New("faults: redis-server not on PATH")

// RedisServer is a redis-server process on a loopback port of its own,
// with its data in a directory of its own and an append-only file synced
// on every write (appendonly yes, appendfsync always): a write Redis
// replied to survives a SIGKILL. Stop it and Start it again to restart it
// on the same port with the same data; Start waits until it answers PING,
// which it does once it has loaded its data. Start, Stop (a signal:
// SIGKILL is a crash, SIGTERM a clean shutdown), Running and Addr are
// those of brokertest.Process.
type RedisServer struct {
	brokertest.Process
}

// StartRedisServer starts a redis-server on a free loopback port with its
// data in dir and returns once it answers PING.
func StartRedisServer(dir string) (*RedisServer, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, ErrNoRedisServer
	}
	port, err := brokertest.FreePort()
	if err != nil {
		return nil, err
	}
	s := &RedisServer{}
	s.Process = brokertest.Process{
		Name: "redis-server", Port: port, Log: filepath.Join(dir, "redis.log"),
		StartTimeout: 15 * time.Second, StopTimeout: 20 * time.Second, RetryPause: 50 * time.Millisecond,
		Command: func() *exec.Cmd {
			return exec.Command("redis-server",
				"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
				"--appendonly", "yes", "--appendfsync", "always", "--save", "",
				"--protected-mode", "no", "--loglevel", "warning", "--logfile", "redis.log")
		},
		Ready: func() error { return ping(s.Addr()) },
	}
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// ping asks the Redis at addr for PONG once.
func ping(addr string) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	return c.Ping(ctx).Err()
}
