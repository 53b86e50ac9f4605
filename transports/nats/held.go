package nats

import (
	"context"
	"errors"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// What a process holds, kept on the server so that the same process name
// gets it back at once after a crash.
//
// JetStream knows which messages a consumer delivered and has not had
// acknowledged, but not which client holds them, so a process killed with
// SIGKILL leaves its messages to the server's redelivery after AckWait.
// To give them back at once to a process restarted with the same name
// (DESIGN §3.4), each subscription keeps the ack subjects of the messages
// it holds in the record bucket, kind "held", key
// "{stream}/{group}/{process}": a writer goroutine of its own writes the
// set after each read that handed messages out (one write at a time, a
// write covering every read since the last; off the read path, which
// would otherwise wait one round trip per read), and the subscription
// deletes it when it closes (having nak'ed what it held). When a
// subscription opens and finds the set of an earlier incarnation of its
// process name, it naks every message in it: the server redelivers them
// at once, ahead of new messages, to the group — in practice to the
// process that just asked for them. A message of the set that was acked
// meanwhile is not pending any more, and the server ignores its nak.
//
// The set can lag: acknowledged messages leave it at the next write, and
// a message handed out just before a crash, before the write that
// follows, waits for AckWait like a message of a process killed for good.
// It cannot help when two live processes share a name (each would nak the
// other's messages at start, which then run twice), nor when the restart
// comes after AckWait (the server has redelivered them already; the nak
// is then ignored or returns a message another process holds to the group).

// kindHeld is the record kind of held sets.
const kindHeld = "held"

// heldTimeout bounds the write of a held set: a set that could not be
// written only makes a crash cost AckTimeout.
const heldTimeout = time.Second

// startHeldWriter starts the goroutine that writes the held set whenever
// heldChanged says a read handed messages out, and looks at the
// consumer's ack floor every floorEvery (lookAtFloor); stopHeldWriter
// stops it.
func (s *subscription) startHeldWriter() {
	ctx, cancel := context.WithCancel(context.Background())
	s.heldDirty = make(chan struct{}, 1)
	s.writerStop = cancel
	s.writerDone = make(chan struct{})
	go func() {
		defer close(s.writerDone)
		floorTick := time.NewTicker(floorEvery)
		defer floorTick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-floorTick.C:
				s.lookAtFloor(ctx)
				continue
			case <-s.heldDirty:
			}
			wctx, cancel := context.WithTimeout(ctx, heldTimeout)
			s.recordHeld(wctx)
			cancel()
		}
	}()
}

// heldChanged wakes the held-set writer; a wake-up already pending covers
// this read too.
func (s *subscription) heldChanged() {
	if s.heldDirty == nil {
		return
	}
	select {
	case s.heldDirty <- struct{}{}:
	default:
	}
}

// stopHeldWriter stops the held-set writer and waits for it (a write
// under way is cancelled).
func (s *subscription) stopHeldWriter() {
	if s.writerStop == nil {
		return
	}
	s.writerStop()
	<-s.writerDone
}

// maxHeldRecord bounds the ack subjects kept per process (a 1 MB message
// holds about 10,000): beyond it the rest waits for AckWait.
const maxHeldRecord = 4096

func (s *subscription) heldKey() string {
	return recordKeyOf(s.t.opts.StreamName(s.topic) + "/" + s.group + "/" + s.consumer)
}

// recordHeld writes the ack subjects of every message the subscription
// holds. A failure is logged: the messages are then only as safe as
// AckWait makes them.
func (s *subscription) recordHeld(ctx context.Context) {
	s.mu.Lock()
	subjects := make([]string, 0, min(len(s.held), maxHeldRecord))
	for d := range s.held {
		if len(subjects) == maxHeldRecord {
			break
		}
		subjects = append(subjects, d.msg.Reply())
	}
	s.mu.Unlock()
	// A write cut off by Close is no failure; one that timed out is.
	if err := s.t.PutRecord(ctx, kindHeld, s.heldKey(), []byte(strings.Join(subjects, "\n"))); err != nil && !errors.Is(err, context.Canceled) {
		s.t.log.Warn("nats: cannot record the messages this process holds; after a crash they wait for AckTimeout",
			"group", s.group, "process", s.consumer, "error", err)
	}
}

// dropHeld deletes the held set (nothing is held any more).
func (s *subscription) dropHeld(ctx context.Context) {
	_ = s.t.DeleteRecord(ctx, kindHeld, s.heldKey())
}

// returnEarlierHeld naks what an earlier incarnation of this process name
// held when it stopped without closing, and deletes its set.
func (s *subscription) returnEarlierHeld(ctx context.Context) error {
	var e jetstream.KeyValueEntry
	err := s.t.onBucket(ctx, false, func(ctx context.Context, kv jetstream.KeyValue) (err error) {
		e, err = kv.Get(ctx, recordKey(kindHeld, s.heldKey()))
		return err
	})
	if e == nil && (err == nil || errors.Is(err, jetstream.ErrKeyNotFound) || bucketGone(err)) {
		return nil // nothing held, or no bucket (made again by the next write)
	}
	if err != nil {
		return err
	}
	gctx, cancel := s.t.timeout(ctx)
	defer cancel()
	prefix := "$JS.ACK." + s.t.opts.StreamName(s.topic) + "." + ConsumerName(s.group) + "."
	n := 0
	for _, reply := range strings.Split(string(e.Value()), "\n") {
		if !strings.HasPrefix(reply, prefix) {
			continue // empty, or not an ack subject of this consumer
		}
		if err := s.t.nc.PublishMsg(&natsgo.Msg{Subject: reply, Data: []byte("-NAK")}); err != nil {
			return err
		}
		n++
	}
	if err := s.t.nc.FlushWithContext(gctx); err != nil {
		return err
	}
	if n > 0 {
		s.t.log.Info("nats: returned what this process name held before a crash to its group",
			"group", s.group, "consumer", s.consumer, "messages", n)
	}
	return s.t.DeleteRecord(gctx, kindHeld, s.heldKey())
}
