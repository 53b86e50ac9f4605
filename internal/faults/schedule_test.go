package faults

import (
	"context"
	"testing"
	"time"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/transports/amqp"
)

// TestScheduleMoverKilled: scheduled events are moved by the only process
// running a mover, a listener, which is killed with SIGKILL while it moves
// them (at the due time of the first) and restarted with the same name.
// None is lost or handled before its due time, and each is handled at
// most 1 s after the later of its due time and the restarted process's
// start.
//
// Redis: every event is moved exactly once (the stream holds each event ID
// once: the move is one Lua script; the killed process's lease lasts
// 50 ms), and handled twice only if it was pending for the killed process.
// RabbitMQ: the killed mover's unacknowledged deliveries return to the
// schedule queue and are moved by the restarted one; an event it had
// published but not acknowledged is published again (same event ID), so
// at most the mover's in-flight count of events is handled twice.
// NATS: the restarted process finds the lease held by its own process
// name, takes it over at once and finishes the moves the killed one had
// claimed (its markers); a re-publish is absorbed by JetStream's
// duplicate window, so the stream holds every event ID once, each
// appended at most 1 s after max(due, restart). An event is handled twice only if the killed process
// held it; one the server had sent to the killed process that it had not
// recorded as held comes back after AckWait (2 s here), so handling is
// checked against AckWait + 1 s.
func TestScheduleMoverKilled(t *testing.T) {
	for _, kind := range []string{"redis", "amqp", "nats"} {
		t.Run(kind, func(t *testing.T) {
			checkLeaks(t)
			scheduleMoverKilled(t, newTarget(t, kind))
		})
	}
}

func scheduleMoverKilled(t *testing.T, tg *target) {
	const (
		events = 600
		spread = 1500 * time.Millisecond // due times spread over this
	)
	lead := 2 * time.Second // from the first Fire to the first due time
	grace := time.Second    // after max(due, restart)
	if tg.kind == "amqp" {
		// The listener looks for the schedule queue every 5 s until the
		// first Schedule created it: give it time to start its mover
		// before the producer's goes. RabbitMQ connections take longer.
		// The restarted mover drains the backlog of events that expired
		// meanwhile in due order (the killed mover's, redelivered, first):
		// under 0.4 s on a quiet machine, about 1.2 s with two busy loops
		// on two cores (the events the killed mover held came last, 2.0 s,
		// while its redeliveries went to the tail of the queue). The
		// bound catches an event that waits for a timeout (AckTimeout here
		// is a minute), not the machine's load.
		lead, grace = 8*time.Second, 4*time.Second
		t.Cleanup(func() { deleteQueues(t, amqp.ScheduleQueues(tg.exchange+"."), "") })
	}
	dir := t.TempDir()
	spec := tg.child("p1", "")
	spec.AckTimeout = time.Minute
	if tg.kind == "nats" {
		spec.AckTimeout = 2 * time.Second
		grace = spec.AckTimeout + time.Second
	}
	spec.Concurrency = 16
	spec.Out = outFile(dir, "p1-0")
	files := []string{spec.Out}
	cur := startChild(t, spec)
	waitFor(t, 30*time.Second, "the listener to join its group", tg.ready)

	// The producer schedules everything and closes before the first due
	// time: the listener is the only mover left.
	pub := newBus(t, bus.Config{Service: tg.service, Transport: tg.url})
	first := time.Now().Add(lead)
	due := make(map[string]time.Time, events)
	ids := make([]string, 0, events)
	ctx := context.Background()
	for i := range events {
		at := first.Add(spread * time.Duration(i) / events)
		id, err := bus.Fire(ctx, pub, ticked, tick{N: i}, bus.WithDeliverAt(at))
		if err != nil {
			t.Fatalf("Fire #%d: %v", i, err)
		}
		due[id] = at
		ids = append(ids, id)
	}
	if tg.kind == "amqp" {
		waitFor(t, 7*time.Second, "the listener's mover to start", func() bool {
			_, consumers, _ := amqpQueue(t, tg.exchange+"._schedule")
			return consumers >= 2 // the producer's and the listener's
		})
	}
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	if time.Now().After(first) {
		t.Fatalf("scheduling %d events took longer than %s: the kill would not land during the moves", events, lead)
	}

	// Kill the mover once it handled the first due events.
	waitFor(t, 30*time.Second, "the first scheduled events to be handled", func() bool { return countHandled(files...) >= 5 })
	cur.kill()
	killedAt := time.Now()
	pending, _ := tg.pending("p1")
	spec.Out = outFile(dir, "p1-1")
	files = append(files, spec.Out)
	cur = startChild(t, spec)
	waitHandled(t, ids, files, time.Minute)
	// Recovery is when the restarted process was ready (its group
	// existed): lateness is measured from there, not from its main, whose
	// start-up (connections, declarations, group owner records) depends on
	// the machine's load more than on the schedule.
	boot := cur.boot()
	recovered := boot
	if ready := cur.Ready(); ready.After(recovered) {
		recovered = ready
	}
	t.Logf("killed %s after the first due time, %d pending; restarted process booted %s and was ready %s after the kill",
		killedAt.Sub(first).Round(time.Millisecond), len(pending), boot.Sub(killedAt).Round(time.Millisecond),
		recovered.Sub(killedAt).Round(time.Millisecond))

	if tg.kind == "nats" {
		// Moved once as far as the stream shows (duplicate detection
		// absorbed every re-publish of a move), and in time.
		stored := natsStoredAt(t, tg)
		var worstMove time.Duration
		for _, id := range ids {
			ats := stored[id]
			if len(ats) != 1 {
				t.Errorf("event %s is in the stream %d times, want 1", id, len(ats))
				continue
			}
			if ats[0].Before(due[id].Truncate(time.Millisecond)) {
				t.Errorf("event %s appended %s before its due time", id, due[id].Sub(ats[0]))
			}
			from := due[id]
			if boot.After(from) {
				from = boot
			}
			late := ats[0].Sub(from)
			worstMove = max(worstMove, late)
			if late > time.Second {
				t.Errorf("event %s appended to its stream %s after max(due, restart)", id, late)
			}
		}
		t.Logf("nats: worst due → stream after max(due, restart): %s", worstMove.Round(time.Millisecond))
	}
	if tg.kind == "redis" {
		// Moved exactly once: the stream holds every event ID once.
		entries, err := tg.rdb.XRange(ctx, tg.stream, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		inStream := map[string]int{}
		for _, e := range entries {
			id, _ := e.Values["_watermill_message_uuid"].(string)
			inStream[id]++
		}
		for _, id := range ids {
			if n := inStream[id]; n != 1 {
				t.Errorf("event %s is in the stream %d times, want 1", id, n)
			}
		}
		if len(entries) != events {
			t.Errorf("stream holds %d entries, want %d", len(entries), events)
		}
	}

	byID := handledBy(readRecords(t, files...))
	var worstAfterRecovery time.Duration
	dups := 0
	for _, id := range ids {
		rs := byID[id]
		if len(rs) == 0 {
			t.Errorf("event %s never handled", id)
			continue
		}
		if len(rs) > 1 {
			dups++
			if tg.kind == "redis" && !pending[id] {
				t.Errorf("event %s handled %d times but was not pending for the killed process", id, len(rs))
			}
		}
		at := rs[0].at
		if at.Before(due[id]) {
			t.Errorf("event %s handled %s before its due time", id, due[id].Sub(at))
		}
		deadline := due[id]
		if recovered.After(deadline) {
			deadline = recovered
		}
		if late := at.Sub(deadline); late > grace {
			t.Errorf("event %s handled %s after max(due, recovery)", id, late)
		} else if late > worstAfterRecovery {
			worstAfterRecovery = late
		}
	}
	if tg.kind == "amqp" && dups > 64+spec.Concurrency {
		t.Errorf("%d events handled twice; at most the mover's and the listener's in-flight counts (%d) expected", dups, 64+spec.Concurrency)
	}
	t.Logf("%s: %d events, %d handled twice; worst lateness after max(due, recovery): %s",
		tg.kind, events, dups, worstAfterRecovery.Round(time.Millisecond))
	if err, ok := cur.terminate(30 * time.Second); !ok || err != nil {
		t.Errorf("last listener on SIGTERM: exited %v, error %v", ok, err)
	}
}
