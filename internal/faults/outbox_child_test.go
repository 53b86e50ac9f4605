package faults

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/outbox"
)

// envOutboxChild holds the JSON outboxSpec of an outbox process: the test
// binary started with it fires through the outbox or runs a relay
// (runOutboxChild) instead of the tests.
const envOutboxChild = "BUSLINE_FAULTS_OUTBOX_CHILD"

// outboxSpec configures an outbox process.
type outboxSpec struct {
	Role      string `json:"role"` // "firer" or "relay"
	Postgres  string `json:"postgres"`
	Transport string `json:"transport"` // the relay's bus
	Service   string `json:"service"`
	Table     string `json:"table"`  // the outbox table
	Orders    string `json:"orders"` // firer: the business table, (n, event_id)
	From      int    `json:"from"`   // firer: the first order number
	Out       string `json:"out"`    // firer: "C id" after each commit, "R id" before each rollback
}

// A firer commits transactions that each insert an order and fire ticked
// for it through the outbox; every fifth transaction is rolled back after
// both writes. It fires until killed. A relay runs Outbox.Run and prints
// "active" when its relay takes the lock and "standby" when it loses it.
func runOutboxChild(raw string) int {
	var s outboxSpec
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		fmt.Fprintln(os.Stderr, "outbox child: bad spec:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	transport := s.Transport
	if s.Role == "firer" {
		transport = "memory://" // firing never touches the broker
	}
	b, err := bus.New(bus.Config{Service: s.Service, Transport: transport, Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "outbox child:", err)
		return 2
	}
	defer b.Close()
	pool, err := pgxpool.New(ctx, s.Postgres)
	if err != nil {
		fmt.Fprintln(os.Stderr, "outbox child:", err)
		return 2
	}
	defer pool.Close()
	ob, err := outbox.New(ctx, b, pool, outbox.Options{
		Table: s.Table, PollInterval: 200 * time.Millisecond, BatchSize: 20, MaxBackoff: 200 * time.Millisecond, Logger: log,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "outbox child:", err)
		return 2
	}
	defer ob.Close()
	if s.Role == "relay" {
		go func() {
			was := false
			for ctx.Err() == nil {
				if a := ob.Active(); a != was {
					was = a
					if a {
						fmt.Println("active")
					} else {
						fmt.Println("standby")
					}
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
		_ = ob.Run(ctx)
		return 0
	}
	out, err := os.OpenFile(s.Out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "outbox child:", err)
		return 2
	}
	defer out.Close()
	for n := s.From; ctx.Err() == nil; n++ {
		fireOrder(ctx, pool, ob, s.Orders, n, out)
		time.Sleep(3 * time.Millisecond)
	}
	return 0
}

// fireOrder runs one transaction of a firer; errors (the database
// restarting) just lose that order number.
func fireOrder(ctx context.Context, pool *pgxpool.Pool, ob *outbox.Outbox, orders string, n int, out io.Writer) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	id, err := outbox.Fire(ctx, tx, ob, ticked, tick{N: n})
	if err != nil {
		return
	}
	if _, err := tx.Exec(ctx, "INSERT INTO "+orders+" (n, event_id) VALUES ($1, $2)", n, id); err != nil {
		return
	}
	if n%5 == 4 {
		_, _ = io.WriteString(out, "R "+id+"\n")
		return // rolled back by the defer
	}
	if tx.Commit(ctx) == nil {
		_, _ = io.WriteString(out, "C "+id+"\n")
	}
}

// outboxProc is a running outbox process.
type outboxProc struct {
	cmd    *exec.Cmd
	active atomic.Bool // it last printed "active", not "standby"
	exited chan struct{}
}

func startOutboxProc(t testing.TB, s outboxSpec) *outboxProc {
	t.Helper()
	raw, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envOutboxChild+"="+string(raw))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &outboxProc{cmd: cmd, exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			switch strings.TrimSpace(sc.Text()) {
			case "active":
				p.active.Store(true)
			case "standby":
				p.active.Store(false)
			}
		}
		_ = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.kill)
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *outboxProc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// isActive reports whether the process last said its relay is active.
func (p *outboxProc) isActive() bool { return p.active.Load() }
