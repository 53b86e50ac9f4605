package faults

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/busline/busline/internal/brokertest"
)

// ErrNoPostgresServer is returned by StartPostgresServer when no
// PostgreSQL server binaries (initdb, postgres) are installed.
var ErrNoPostgresServer = errors.New("faults: no PostgreSQL server binaries (initdb, postgres) under /usr/lib/postgresql/*/bin or on PATH")

// PostgresServer is a PostgreSQL server of a test's own: a cluster made
// by initdb in a directory of its own, serving on a free loopback port
// with trust authentication for the user postgres (database postgres).
// Stop it and Start it again to restart it on the same port and data.
// PostgreSQL refuses to run as root: when the test runs as root, initdb
// and the server run as the system user postgres, and the directory (and
// its parent, a test's temporary directory) are opened to it.
//
// Start waits until the server accepts connections, which it does once it
// has recovered its data. Stop sends a signal and waits until it has
// exited: SIGQUIT is an immediate shutdown, a crash for every client (the
// next start recovers from the WAL); SIGINT a fast shutdown; SIGTERM a
// smart one. Do not use SIGKILL: the server's children would outlive it.
// Start, Stop and Running are those of brokertest.Process.
type PostgresServer struct {
	brokertest.Process
	bin  string // the directory of initdb and postgres
	dir  string
	data string
	cred *syscall.Credential // nil: as the current user
}

// postgresBin finds the directory of the server binaries: the newest
// Debian /usr/lib/postgresql/N/bin, else initdb's directory on PATH.
func postgresBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", ErrNoPostgresServer
}

// StartPostgresServer makes a cluster in dir (initdb) and starts a server
// on a free loopback port; it returns once the server accepts connections.
func StartPostgresServer(dir string) (*PostgresServer, error) {
	bin, err := postgresBin()
	if err != nil {
		return nil, err
	}
	port, err := brokertest.FreePort()
	if err != nil {
		return nil, err
	}
	s := &PostgresServer{bin: bin, dir: dir, data: filepath.Join(dir, "data")}
	s.Process = brokertest.Process{
		Name: "postgres", Port: port, Log: filepath.Join(dir, "postgres.log"), CaptureOutput: true,
		StartTimeout: 30 * time.Second, StopTimeout: 30 * time.Second, RetryPause: 50 * time.Millisecond,
		Command: s.command,
		Ready:   func() error { return connect(s.URL()) },
	}
	if err := os.Mkdir(s.data, 0o700); err != nil {
		return nil, fmt.Errorf("faults: %w", err)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("faults: running as root, PostgreSQL needs another user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		for _, d := range []string{filepath.Dir(dir), dir} {
			if err := openTo(d); err != nil {
				return nil, err
			}
		}
		if err := os.Chown(s.data, uid, gid); err != nil {
			return nil, fmt.Errorf("faults: %w", err)
		}
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", s.data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "--no-instructions")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("faults: initdb: %w: %s", err, out)
	}
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// openTo lets other users traverse d (adds the x bits).
func openTo(d string) error {
	fi, err := os.Stat(d)
	if err != nil {
		return fmt.Errorf("faults: %w", err)
	}
	if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
		return fmt.Errorf("faults: %w", err)
	}
	return nil
}

// URL is the server's database postgres as user postgres.
func (s *PostgresServer) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.Port)
}

// command is the server's command line. No Unix socket; fsync off: a
// crash of the server (not of the machine) loses nothing committed, and
// the test runs faster.
func (s *PostgresServer) command() *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), "-D", s.data, "-p", strconv.Itoa(s.Port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
		"-c", "fsync=off", "-c", "max_connections=200", "-c", "shared_buffers=32MB")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	return cmd
}

// connect connects to the server once.
func connect(raw string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, raw)
	if err != nil {
		return err
	}
	err = c.Ping(ctx)
	_ = c.Close(ctx)
	return err
}
