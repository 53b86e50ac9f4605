package nats

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/driver"
)

const testEvent = "driver_test.happened"

func openSub(t *testing.T, tr *Transport, group string, ack time.Duration) driver.Subscription {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := tr.Open(ctx, testEvent, transports.SubscriberConfig{Group: group, Consumer: "p1", AckTimeout: ack, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// receive reads until n messages came or the deadline passed.
func receive(t *testing.T, s driver.Subscription, n int, within time.Duration) []*driver.Message {
	t.Helper()
	var out []*driver.Message
	deadline := time.Now().Add(within)
	for len(out) < n && time.Now().Before(deadline) {
		ms, err := s.Receive(context.Background(), n-len(out), 200*time.Millisecond)
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		out = append(out, ms...)
	}
	if len(out) != n {
		t.Fatalf("received %d messages, want %d", len(out), n)
	}
	return out
}

func TestDriverReceiveAckNack(t *testing.T) {
	tr := openTransport(t, testURL(t, "", ""))
	s := openSub(t, tr, "svc-work", time.Minute)
	msgs := []*message.Message{message.NewMessage(watermill.NewUUID(), []byte(`{"n":1}`)), message.NewMessage(watermill.NewUUID(), []byte(`{"n":2}`))}
	msgs[0].Metadata.Set("ce-type", testEvent)
	if err := tr.Publish(testEvent, msgs...); err != nil {
		t.Fatal(err)
	}
	// A re-fire of the same event ID within the duplicate window is stored once.
	if err := tr.Publish(testEvent, msgs[0]); err != nil {
		t.Fatal(err)
	}
	got := receive(t, s, 2, 5*time.Second)
	for i, m := range got {
		if m.Message.UUID != msgs[i].UUID || m.Topic != testEvent || m.Attempts != 0 || !m.Recorded || m.Poison != nil {
			t.Fatalf("message %d = {uuid %s topic %q attempts %d recorded %v poison %v}", i, m.Message.UUID, m.Topic, m.Attempts, m.Recorded, m.Poison)
		}
	}
	if got[0].Message.Metadata.Get("ce-type") != testEvent {
		t.Errorf("metadata = %v", got[0].Message.Metadata)
	}
	ctx := context.Background()
	if err := s.Ack(ctx, []driver.AckID{got[1].AckID}); err != nil {
		t.Fatal(err)
	}
	// Attempted once, redelivered after a delay.
	start := time.Now()
	if err := s.Nack(ctx, []driver.Nack{{AckID: got[0].AckID, Delay: 300 * time.Millisecond, Attempts: 1}}); err != nil {
		t.Fatal(err)
	}
	again := receive(t, s, 1, 5*time.Second)[0]
	if gap := time.Since(start); gap < 250*time.Millisecond {
		t.Errorf("redelivered after %s, want the 300ms delay", gap)
	}
	if again.Message.UUID != msgs[0].UUID || again.Attempts != 1 {
		t.Fatalf("redelivery = {uuid %s attempts %d}, want {%s 1}", again.Message.UUID, again.Attempts, msgs[0].UUID)
	}
	// Returned without reaching a handler: JetStream counts the delivery,
	// the driver does not.
	if err := s.Nack(ctx, []driver.Nack{{AckID: again.AckID, Attempts: 1}}); err != nil {
		t.Fatal(err)
	}
	third := receive(t, s, 1, 5*time.Second)[0]
	if third.Attempts != 1 {
		t.Fatalf("after a delivery that never reached a handler, Attempts = %d, want 1", third.Attempts)
	}
	if err := s.Ack(ctx, []driver.AckID{third.AckID}); err != nil {
		t.Fatal(err)
	}
	if ms, err := s.Receive(ctx, 10, 300*time.Millisecond); err != nil || len(ms) != 0 {
		t.Fatalf("after acking everything Receive = %d messages, %v", len(ms), err)
	}
	if recs, err := tr.Records(ctx, kindAttempts); err != nil || len(recs) != 0 {
		t.Errorf("attempt corrections left after the ack: %v, %v", recs, err)
	}
}

// A delivery closed unacknowledged goes back to the group at once, not
// after AckWait.
func TestDriverCloseReturnsHeld(t *testing.T) {
	tr := openTransport(t, testURL(t, "", ""))
	s := openSub(t, tr, "svc-work", 10*time.Minute)
	if err := tr.Publish(testEvent, message.NewMessage(watermill.NewUUID(), []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	receive(t, s, 1, 5*time.Second)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openSub(t, tr, "svc-work", 10*time.Minute)
	m := receive(t, s2, 1, 5*time.Second)[0]
	if m.Attempts != 1 {
		t.Errorf("Attempts = %d, want 1", m.Attempts)
	}
}

// KeepAlive restarts AckWait: a held message is not redelivered while kept alive.
func TestDriverKeepAlive(t *testing.T) {
	tr := openTransport(t, testURL(t, "", ""))
	ack := 2 * time.Second
	s := openSub(t, tr, "svc-work", ack)
	if err := tr.Publish(testEvent, message.NewMessage(watermill.NewUUID(), []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	m := receive(t, s, 1, 5*time.Second)[0]
	// Twice AckWait, with a keep-alive every quarter of it.
	for range 8 {
		if err := s.KeepAlive(context.Background(), []driver.AckID{m.AckID}); err != nil {
			t.Fatal(err)
		}
		ms, err := s.Receive(context.Background(), 1, ack/4)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) > 0 {
			t.Fatalf("redelivered while kept alive (attempts %d)", ms[0].Attempts)
		}
	}
}

// A replay marked for another group is acknowledged unseen.
func TestDriverReplayForOtherGroupSkipped(t *testing.T) {
	tr := openTransport(t, testURL(t, "", ""))
	mine := openSub(t, tr, "svc-mine", time.Minute)
	other := openSub(t, tr, "svc-other", time.Minute)
	msg := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
	msg.Metadata.Set("ce-type", testEvent)
	ctx := context.Background()
	if err := tr.DeadLetter(ctx, "svc-mine", msg, "boom", 3); err != nil {
		t.Fatal(err)
	}
	dls, err := tr.DeadLetters(ctx, "svc-mine", 0)
	if err != nil || len(dls) != 1 {
		t.Fatalf("DeadLetters = %v, %v", dls, err)
	}
	if dls[0].Reason != "boom" || dls[0].Attempts != 3 || dls[0].Topic != testEvent || dls[0].Message.UUID != msg.UUID {
		t.Fatalf("dead letter = %+v", dls[0])
	}
	if err := tr.ReplayDeadLetter(ctx, "svc-mine", dls[0].ID); err != nil {
		t.Fatal(err)
	}
	got := receive(t, mine, 1, 5*time.Second)[0]
	if got.Message.UUID != msg.UUID || got.Attempts != 0 {
		t.Fatalf("replayed = {%s attempts %d}", got.Message.UUID, got.Attempts)
	}
	if ms, err := other.Receive(ctx, 1, 300*time.Millisecond); err != nil || len(ms) != 0 {
		t.Fatalf("the other group got %d messages (%v), want none", len(ms), err)
	}
	if dls, _ := tr.DeadLetters(ctx, "svc-mine", 0); len(dls) != 0 {
		t.Fatalf("replayed dead letter still listed: %v", dls)
	}
	if err := tr.DeadLetter(ctx, "svc-mine", msg, "again", 1); err != nil {
		t.Fatal(err)
	}
	if n, err := tr.PurgeDeadLetters(ctx, "svc-mine"); err != nil || n != 1 {
		t.Fatalf("PurgeDeadLetters = %d, %v, want 1", n, err)
	}
}

// A consumer deleted under a running subscription is created again at the
// next broken read (here from the start of the stream: nothing was
// acknowledged before).
func TestDriverConsumerDeleted(t *testing.T) {
	tr := openTransport(t, testURL(t, "", ""))
	s := openSub(t, tr, "svc-work", time.Minute)
	ctx := context.Background()
	if err := tr.JetStream().DeleteConsumer(ctx, tr.Options().StreamName(testEvent), ConsumerName("svc-work")); err != nil {
		t.Fatal(err)
	}
	msg := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
	if err := tr.Publish(testEvent, msg); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ms, err := s.Receive(ctx, 1, 200*time.Millisecond)
		if err == nil && len(ms) == 1 {
			if ms[0].Message.UUID != msg.UUID {
				t.Fatalf("got %s, want %s", ms[0].Message.UUID, msg.UUID)
			}
			return
		}
	}
	t.Fatal("no message after the consumer was deleted")
}

// readResult is what a Receive returned.
type readResult struct {
	msgs []*driver.Message
	err  error
}

// startWaitingRead starts a Receive that waits up to 10 s and returns once
// a pull request of the group waits on the server (this read's, or one an
// earlier ended read left behind), with the function that ends the read
// (as the engine does when a delayed redelivery comes due) and the
// channel of its result.
func startWaitingRead(t *testing.T, tr *Transport, s driver.Subscription, group string) (context.CancelFunc, chan readResult) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan readResult, 1)
	go func() {
		ms, err := s.Receive(ctx, 4, 10*time.Second)
		done <- readResult{ms, err}
	}()
	c, err := tr.JetStream().Consumer(context.Background(), tr.Options().StreamName(testEvent), ConsumerName(group))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a pull request to wait on the server", func() bool {
		info, err := c.Info(context.Background())
		return err == nil && info.NumWaiting > 0
	})
	return cancel, done
}

// leaveWaitingRead starts a waiting read and ends it, as the engine does,
// once its pull request waits on the server: the read returns nothing.
func leaveWaitingRead(t *testing.T, tr *Transport, s driver.Subscription, group string) {
	t.Helper()
	cancel, done := startWaitingRead(t, tr, s, group)
	cancel()
	if r := <-done; len(r.msgs) > 0 || !errors.Is(r.err, context.Canceled) {
		t.Fatalf("ended Receive: %d messages, %v; want none, context.Canceled", len(r.msgs), r.err)
	}
}

// A waiting read the engine ends early leaves its pull request on the
// server (JetStream cannot take one back) and keeps listening to it; what
// the server sends there is given back at once, its attempt count kept.
// Here nothing else reads, so the server sends the message to that
// request: the next read gets it as the second delivery, with no attempt
// counted, well within AckWait (a minute).
func TestDriverCancelledReadGivesBackWhatComesLate(t *testing.T) {
	tr := openTransport(t, testURL(t, "", ""))
	s := openSub(t, tr, "svc-work", time.Minute)
	leaveWaitingRead(t, tr, s, "svc-work")
	msg := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
	if err := tr.Publish(testEvent, msg); err != nil {
		t.Fatal(err)
	}
	// Before the next read sends a request of its own (the server could
	// serve that one first), the left-behind request has the message.
	sub := s.(*subscription)
	waitFor(t, "the left-behind request to get the message", func() bool {
		sub.mu.Lock()
		r := sub.lingering
		sub.mu.Unlock()
		if r == nil {
			return false
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.finished && len(r.msgs) == 1
	})
	got := receive(t, s, 1, 2*time.Second)[0]
	d := got.AckID.(*delivery)
	if got.Message.UUID != msg.UUID || got.Attempts != 0 || d.delivered != 2 {
		t.Fatalf("got {%s attempts %d, delivery %d}, want {%s attempts 0, delivery 2: the second, after the ended read's request gave the first back}",
			got.Message.UUID, got.Attempts, d.delivered, msg.UUID)
	}
	if err := s.Ack(context.Background(), []driver.AckID{got.AckID}); err != nil {
		t.Fatal(err)
	}
}

// A message published the instant a waiting read ends is handed out by
// that read or by the next one within a second or two, with no attempt
// counted, whichever pull request the server sent it to. Before the
// subscription kept listening to ended reads' requests, nats.go could
// unsubscribe a request's inbox just after the server sent it the message,
// which then waited out AckWait (a minute here): that code failed this
// test within its first few tries.
func TestDriverCancelledReadLosesNothing(t *testing.T) {
	tr := openTransport(t, testURL(t, "", ""))
	s := openSub(t, tr, "svc-work", time.Minute)
	for range 20 {
		cancel, done := startWaitingRead(t, tr, s, "svc-work")
		cancel()
		msg := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
		if err := tr.Publish(testEvent, msg); err != nil {
			t.Fatal(err)
		}
		r := <-done
		if r.err != nil && !errors.Is(r.err, context.Canceled) {
			t.Fatalf("ended Receive: %v", r.err)
		}
		got := r.msgs // the read may have taken it before it ended
		if len(got) == 0 {
			got = receive(t, s, 1, 2*time.Second)
		}
		if len(got) != 1 || got[0].Message.UUID != msg.UUID || got[0].Attempts != 0 {
			t.Fatalf("got %d messages, the first {%s attempts %d}, want {%s 0}", len(got), got[0].Message.UUID, got[0].Attempts, msg.UUID)
		}
		if d := got[0].AckID.(*delivery); d.delivered > 2 {
			t.Fatalf("delivery %d: the message passed through more than one left-behind request", d.delivered)
		}
		if err := s.Ack(context.Background(), []driver.AckID{got[0].AckID}); err != nil {
			t.Fatal(err)
		}
	}
}

// The next read takes over the pull request an ended read left behind,
// rather than sending one more: a message published then comes on it,
// first delivery, instead of passing through the left-behind request
// first.
func TestDriverNextReadTakesOverLeftRequest(t *testing.T) {
	tr := openTransport(t, testURL(t, "", ""))
	s := openSub(t, tr, "svc-work", time.Minute)
	leaveWaitingRead(t, tr, s, "svc-work")
	next := make(chan readResult, 1)
	go func() {
		ms, err := s.Receive(context.Background(), 4, 10*time.Second)
		next <- readResult{ms, err}
	}()
	sub := s.(*subscription)
	waitFor(t, "the next read to take the left-behind request over", func() bool {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		return sub.lingering == nil
	})
	c, err := tr.JetStream().Consumer(context.Background(), tr.Options().StreamName(testEvent), ConsumerName("svc-work"))
	if err != nil {
		t.Fatal(err)
	}
	if info, err := c.Info(context.Background()); err != nil || info.NumWaiting != 1 {
		t.Fatalf("pull requests waiting: %v (%v), want 1 (the one taken over)", info.NumWaiting, err)
	}
	msg := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
	if err := tr.Publish(testEvent, msg); err != nil {
		t.Fatal(err)
	}
	r := <-next
	if r.err != nil || len(r.msgs) != 1 {
		t.Fatalf("next read: %d messages, %v; want 1", len(r.msgs), r.err)
	}
	got := r.msgs[0]
	if d := got.AckID.(*delivery); got.Message.UUID != msg.UUID || got.Attempts != 0 || d.delivered != 1 {
		t.Fatalf("got {%s attempts %d, delivery %d}, want {%s attempts 0, delivery 1}", got.Message.UUID, got.Attempts, d.delivered, msg.UUID)
	}
	if err := s.Ack(context.Background(), []driver.AckID{got.AckID}); err != nil {
		t.Fatal(err)
	}
}

// Close ends the pull request an ended read left behind (it would wait
// 10 s more) and waits for the goroutine that listens to it: Close
// returns well before the request would have expired, and a message
// published afterwards reaches another process of the group as its first
// delivery, not through the closed subscription's request.
func TestDriverCloseEndsWaitingRead(t *testing.T) {
	tr := openTransport(t, testURL(t, "", ""))
	s := openSub(t, tr, "svc-work", time.Minute)
	leaveWaitingRead(t, tr, s, "svc-work")
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Close took %s: it waited for the left-behind request to expire", took)
	}
	if _, err := s.Receive(context.Background(), 1, time.Second); !errors.Is(err, transports.ErrClosed) {
		t.Fatalf("Receive after Close: %v, want ErrClosed", err)
	}
	ctx, cancelOpen := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelOpen()
	other, err := tr.Open(ctx, testEvent, transports.SubscriberConfig{Group: "svc-work", Consumer: "p2", AckTimeout: time.Minute, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })
	msg := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
	if err := tr.Publish(testEvent, msg); err != nil {
		t.Fatal(err)
	}
	got := receive(t, other, 1, 2*time.Second)[0]
	if d := got.AckID.(*delivery); got.Message.UUID != msg.UUID || d.delivered != 1 {
		t.Fatalf("got {%s delivery %d}, want {%s delivery 1}", got.Message.UUID, d.delivered, msg.UUID)
	}
}

// A process that joins with a shorter AckTimeout leaves the group's
// AckWait as it is: the processes already running keep their messages
// alive at a third of the AckWait they opened with, and a shorter one
// would have the server redeliver those messages while their handlers
// run. A longer AckTimeout raises it.
func TestAckWaitNeverLowered(t *testing.T) {
	tr := openTransport(t, testURL(t, "", ""))
	const group = "svc-ackwait"
	ackWait := func() time.Duration {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := tr.JetStream().Consumer(ctx, tr.opts.StreamName(testEvent), ConsumerName(group))
		if err != nil {
			t.Fatal(err)
		}
		return c.CachedInfo().Config.AckWait
	}
	first := openSub(t, tr, group, 6*time.Second)
	if got := ackWait(); got != 6*time.Second {
		t.Fatalf("AckWait %v after the first process, want 6s", got)
	}
	later := openSub(t, tr, group, time.Second)
	if got := ackWait(); got != 6*time.Second {
		t.Fatalf("AckWait %v after a process with AckTimeout 1s joined, want 6s kept", got)
	}
	if got := first.Capabilities().AckWait; got != 6*time.Second {
		t.Errorf("first process keeps messages alive within %v, want 6s", got)
	}
	if got := later.Capabilities().AckWait; got != time.Second {
		t.Errorf("later process keeps messages alive within %v, want its own 1s (shorter than the group's)", got)
	}
	openSub(t, tr, group, 10*time.Second)
	if got := ackWait(); got != 10*time.Second {
		t.Fatalf("AckWait %v after a process with AckTimeout 10s joined, want 10s", got)
	}
}

// A process killed while it held a delivery, and restarted under its name,
// gets that delivery back at once, not after AckWait: the held-set writer
// recorded it after the read, and the new subscription naks what the set
// names.
func TestRestartSameNameReturnsHeld(t *testing.T) {
	tr := openTransport(t, testURL(t, "", ""))
	killed := openSub(t, tr, "svc-restart", 10*time.Minute).(*subscription)
	if err := tr.Publish(testEvent, message.NewMessage(watermill.NewUUID(), []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	receive(t, killed, 1, 5*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs, err := tr.Records(context.Background(), kindHeld)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs[killed.heldKey()]) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the held set was not written within 10s of the read")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The kill: the process stops without closing (its writer with it).
	killed.stopHeldWriter()
	restarted := openSub(t, tr, "svc-restart", 10*time.Minute)
	m := receive(t, restarted, 1, 5*time.Second)[0]
	if m.Attempts != 1 {
		t.Errorf("Attempts = %d on the delivery the restarted process got, want 1 (the killed one had it once)", m.Attempts)
	}
}

// readAcrossRecovery reads (and acks) until n distinct events came or 10s
// passed, past the broken read that finds the consumer gone, and returns
// the event IDs seen.
func readAcrossRecovery(t *testing.T, s *subscription, n int) map[string]bool {
	t.Helper()
	ctx := context.Background()
	seen := map[string]bool{}
	for deadline := time.Now().Add(10 * time.Second); len(seen) < n && time.Now().Before(deadline); {
		ms, err := s.Receive(ctx, 10, 200*time.Millisecond)
		if err != nil {
			continue
		}
		for _, m := range ms {
			seen[m.Message.UUID] = true
			_ = s.Ack(ctx, []driver.AckID{m.AckID})
		}
	}
	return seen
}

// handleSome fires n events, has s read and acknowledge them, and waits
// until its consumer's ack floor reached them.
func handleSome(t *testing.T, tr *Transport, s *subscription, n int) {
	t.Helper()
	for range n {
		if err := tr.Publish(testEvent, message.NewMessage(watermill.NewUUID(), []byte(`{}`))); err != nil {
			t.Fatal(err)
		}
	}
	var acks []driver.AckID
	for _, m := range receive(t, s, n, 5*time.Second) {
		acks = append(acks, m.AckID)
	}
	if err := s.Ack(context.Background(), acks); err != nil {
		t.Fatal(err)
	}
	waitFloor(t, s, uint64(n))
}

// waitFloor has s look at its consumer's ack floor (the held-set writer
// does it every floorEvery; here at once) until the server reports want,
// once it has the acks.
func waitFloor(t *testing.T, s *subscription, want uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.lookAtFloor(context.Background())
		s.mu.Lock()
		f := s.floor
		s.mu.Unlock()
		if f >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ack floor %d, want %d", f, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A consumer deleted under a running subscription is made again after the
// ack floor the subscription last saw: the events its group had handled
// are not delivered again; the one fired since, and one delivered and not
// acknowledged, are.
func TestConsumerDeletedResumesAfterAckFloor(t *testing.T) {
	tr := openTransport(t, testURL(t, "", ""))
	s := openSub(t, tr, "svc-floor", time.Minute).(*subscription)
	ctx := context.Background()
	var handled []*message.Message
	for range 3 {
		handled = append(handled, message.NewMessage(watermill.NewUUID(), []byte(`{}`)))
	}
	held := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
	if err := tr.Publish(testEvent, append(handled, held)...); err != nil {
		t.Fatal(err)
	}
	got := receive(t, s, 4, 5*time.Second)
	var acks []driver.AckID
	for _, m := range got {
		if m.Message.UUID != held.UUID {
			acks = append(acks, m.AckID)
		}
	}
	if err := s.Ack(ctx, acks); err != nil {
		t.Fatal(err)
	}
	waitFloor(t, s, 3)
	if err := tr.JetStream().DeleteConsumer(ctx, tr.Options().StreamName(testEvent), ConsumerName("svc-floor")); err != nil {
		t.Fatal(err)
	}
	fresh := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
	if err := tr.Publish(testEvent, fresh); err != nil {
		t.Fatal(err)
	}
	seen := readAcrossRecovery(t, s, 2)
	for _, m := range handled {
		if seen[m.UUID] {
			t.Errorf("event %s, acknowledged before the consumer was deleted, delivered again", m.UUID)
		}
	}
	if !seen[held.UUID] || !seen[fresh.UUID] {
		t.Fatalf("after the consumer was made again got %v, want the unacknowledged %s and the new %s", seen, held.UUID, fresh.UUID)
	}
}

// A stream deleted and made again under a running subscription starts its
// sequences again: the consumer made again starts at its beginning, not
// after the ack floor of the old stream, and skips nothing.
func TestStreamRemadeStartsFromItsBeginning(t *testing.T) {
	tr := openTransport(t, testURL(t, "", ""))
	s := openSub(t, tr, "svc-remade", time.Minute).(*subscription)
	ctx := context.Background()
	handleSome(t, tr, s, 3)
	if err := tr.JetStream().DeleteStream(ctx, tr.Options().StreamName(testEvent)); err != nil {
		t.Fatal(err)
	}
	// Published on a stream made again: sequences 1 and 2, below the old floor.
	fresh := []*message.Message{message.NewMessage(watermill.NewUUID(), []byte(`{}`)), message.NewMessage(watermill.NewUUID(), []byte(`{}`))}
	if err := tr.Publish(testEvent, fresh...); err != nil {
		t.Fatal(err)
	}
	seen := readAcrossRecovery(t, s, 2)
	for _, m := range fresh {
		if !seen[m.UUID] {
			t.Errorf("event %s, fired on the stream made again, never delivered", m.UUID)
		}
	}
}

// A consumer made again by another process of the group, at a lower
// position than this subscription's floor, replaces that floor: the
// events after the new consumer's floor are not acknowledged, and a
// second deletion must not skip them.
func TestFloorFollowsAConsumerMadeAgainElsewhere(t *testing.T) {
	tr := openTransport(t, testURL(t, "", ""))
	s := openSub(t, tr, "svc-lower", time.Minute).(*subscription)
	ctx := context.Background()
	handleSome(t, tr, s, 3)
	stream := tr.Options().StreamName(testEvent)
	if err := tr.JetStream().DeleteConsumer(ctx, stream, ConsumerName("svc-lower")); err != nil {
		t.Fatal(err)
	}
	// Another process makes it again from the start of the stream (its
	// floor was older); this subscription has not seen the deletion.
	if _, err := tr.JetStream().CreateConsumer(ctx, stream, tr.consumerConfig(testEvent, "svc-lower", time.Minute, transports.SinceBeginning, 0)); err != nil {
		t.Fatal(err)
	}
	s.lookAtFloor(ctx)
	s.mu.Lock()
	f := s.floor
	s.mu.Unlock()
	if f != 0 {
		t.Fatalf("floor %d after the consumer was made again from the start, want 0 (its events are not acknowledged)", f)
	}
}
