package pgstore_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/idempotency"
	"github.com/busline/busline/idempotency/pgstore"
)

// Environment of the child process of TestKilledBetweenWriteAndCommit.
const (
	envChild   = "BUSLINE_PGSTORE_KILL_CHILD"
	envDedup   = "BUSLINE_PGSTORE_KILL_DEDUP"
	envEffects = "BUSLINE_PGSTORE_KILL_EFFECTS"
	written    = "EFFECT-WRITTEN"
)

// TestKilledBetweenWriteAndCommit re-runs the test binary as a child that
// handles one event: its handler writes its effect through the event's
// transaction, says so, and blocks before returning. The parent kills the
// child with SIGKILL there. Neither the effect nor the dedup row may
// survive, and the redelivery must run the handler once, at once (the
// claim dies with the child's connection; no lease to wait out).
func TestKilledBetweenWriteAndCommit(t *testing.T) {
	f := newFixture(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), envChild+"=1", envDedup+"="+f.dedup, envEffects+"="+f.effects)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	timeout := time.After(30 * time.Second)
	for ready := false; !ready; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("child exited before writing its effect")
			}
			ready = strings.Contains(l, written)
		case <-timeout:
			t.Fatal("child never wrote its effect")
		}
	}

	// The child holds the claim: a copy delivered now is held, not run.
	h := f.chain(func(msg *message.Message) ([]*message.Message, error) { return nil, f.insert(msg, "parent") })
	if _, err := h(newMsg("ev-kill")); !errors.Is(err, idempotency.ErrHeld) {
		t.Fatalf("delivery while the child holds the event = %v, want ErrHeld", err)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed = true
	_ = cmd.Wait()
	for range lines { // drain
	}
	if n := f.effectRows(t, "ev-kill"); n != 0 {
		t.Fatalf("after the kill: %d effect rows, want 0", n)
	}
	if all, _ := f.dedupRows(t, "g:ev-kill"); all != 0 {
		t.Fatalf("after the kill: %d dedup rows, want 0", all)
	}

	// The redelivery runs as soon as PostgreSQL has dropped the dead
	// connection (it sees the closed socket at once).
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := h(newMsg("ev-kill"))
		if err == nil {
			break
		}
		if !errors.Is(err, idempotency.ErrHeld) || time.Now().After(deadline) {
			t.Fatalf("redelivery after the kill: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := f.effectRows(t, "ev-kill"); n != 1 {
		t.Fatalf("after the redelivery: %d effect rows, want 1", n)
	}
	if _, done := f.dedupRows(t, "g:ev-kill"); done != 1 {
		t.Fatalf("after the redelivery: %d done rows, want 1", done)
	}
	if _, err := h(newMsg("ev-kill")); err != nil {
		t.Fatal(err)
	}
	if n := f.effectRows(t, "ev-kill"); n != 1 {
		t.Fatalf("after a duplicate: %d effect rows, want 1", n)
	}
}

// TestKillChild is the child of TestKilledBetweenWriteAndCommit; it does
// nothing in a normal run.
func TestKillChild(t *testing.T) {
	if os.Getenv(envChild) != "1" {
		t.Skip("runs only as the child of TestKilledBetweenWriteAndCommit")
	}
	p := pool(t)
	s, err := pgstore.New(context.Background(), p, pgstore.Options{Table: os.Getenv(envDedup)})
	if err != nil {
		t.Fatal(err)
	}
	effects := os.Getenv(envEffects)
	h := idempotency.Middleware(idempotency.Options{Store: s, Group: "g", Lease: time.Minute})(
		func(msg *message.Message) ([]*message.Message, error) {
			ctx := msg.Context()
			if _, err := pgstore.Tx(ctx).Exec(ctx, "INSERT INTO "+effects+" (event_id, note) VALUES ($1, 'child')", msg.UUID); err != nil {
				return nil, err
			}
			fmt.Println(written)
			time.Sleep(10 * time.Minute) // killed here, between the write and the commit
			return nil, nil
		})
	_, err = h(newMsg("ev-kill"))
	t.Fatalf("the child's handler returned (%v); it should have been killed", err)
}
