package faults

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNoRedisServer is returned by StartRedisServer when redis-server is not on PATH.
var ErrNoRedisServer = errors.New("faults: redis-server not on PATH")

// RedisServer is a redis-server process on a loopback port of its own,
// with its data in a directory of its own and an append-only file synced
// on every write (appendonly yes, appendfsync always): a write Redis
// replied to survives a SIGKILL. Stop it and Start it again to restart it
// on the same port with the same data.
type RedisServer struct {
	port int
	dir  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan error // receives the process's exit once
}

// StartRedisServer starts a redis-server on a free loopback port with its
// data in dir and returns once it answers PING.
func StartRedisServer(dir string) (*RedisServer, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, ErrNoRedisServer
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faults: find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	s := &RedisServer{port: port, dir: dir}
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// Addr is the server's host:port.
func (s *RedisServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Running reports whether the server process is running.
func (s *RedisServer) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// Start starts the server (again) on its port and directory and waits
// until it answers PING, which it does once it has loaded its data.
func (s *RedisServer) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		cmd := exec.Command("redis-server",
			"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir,
			"--appendonly", "yes", "--appendfsync", "always", "--save", "",
			"--protected-mode", "no", "--loglevel", "warning", "--logfile", "redis.log")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("faults: start redis-server: %w", err)
		}
		exited := make(chan error, 1) // reaps the process
		go func() { exited <- cmd.Wait() }()
		err := waitPing(s.Addr(), exited, deadline)
		if err == nil {
			s.cmd, s.exited = cmd, exited
			return nil
		}
		_ = cmd.Process.Kill()
		<-exited
		if !errors.Is(err, errExited) || time.Now().After(deadline) {
			return fmt.Errorf("faults: redis-server on %s: %w (log: %s)", s.Addr(), err, s.dir+"/redis.log")
		}
		// The port is still held by the previous process: try again.
		time.Sleep(50 * time.Millisecond)
	}
}

var errExited = errors.New("redis-server exited")

func waitPing(addr string, exited <-chan error, deadline time.Time) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("%w: %v", errExited, err)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop sends sig to the server (SIGKILL: a crash; SIGTERM: a clean
// shutdown) and waits until the process has exited.
func (s *RedisServer) Stop(sig os.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}
