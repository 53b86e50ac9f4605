package redisstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/transports"
)

func TestPublishSubscribeAck(t *testing.T) {
	tr := openTransport(t, testURL(t, ""))
	sub := newSub(t, tr, "svc-listener", "proc-1", time.Minute, 4, transports.Since{})
	ch, _ := subscribe(t, sub, "orders.placed")
	ids := publish(t, tr, "orders.placed", "a", "b", "c")
	for range ids {
		m := receive(t, ch, 5*time.Second)
		if !slices.Contains(ids, m.UUID) {
			t.Fatalf("UUID %s, want one of %v", m.UUID, ids)
		}
		if attempt(m) != 1 {
			t.Fatalf("attempt %d, want 1", attempt(m))
		}
		info := transports.Info(m)
		if info.Topic != "orders.placed" || info.Group != "svc-listener" {
			t.Fatalf("info %+v", info)
		}
		m.Ack()
	}
	eventually(t, 5*time.Second, "no pending entries", func() bool { return pendingCount(t, tr, "orders.placed", "svc-listener") == 0 })

	// Group and consumer names are visible in XINFO.
	groups, err := tr.Client().XInfoGroups(context.Background(), tr.StreamKey("orders.placed")).Result()
	if err != nil || len(groups) != 1 || groups[0].Name != "svc-listener" {
		t.Fatalf("XINFO GROUPS = %+v, %v", groups, err)
	}
	consumers, err := tr.Client().XInfoConsumers(context.Background(), tr.StreamKey("orders.placed"), "svc-listener").Result()
	if err != nil || len(consumers) != 1 || consumers[0].Name != "proc-1" {
		t.Fatalf("XINFO CONSUMERS = %+v, %v", consumers, err)
	}
}

func TestConcurrencyBound(t *testing.T) {
	tr := openTransport(t, testURL(t, ""))
	sub := newSub(t, tr, "g", "c", time.Minute, 3, transports.Since{})
	ch, _ := subscribe(t, sub, "e.x")
	publish(t, tr, "e.x", "1", "2", "3", "4", "5")
	var got []*message.Message
	for range 3 {
		got = append(got, receive(t, ch, 5*time.Second))
	}
	noMessage(t, ch, 200*time.Millisecond) // a fourth would exceed Concurrency
	got[0].Ack()
	m := receive(t, ch, 5*time.Second)
	if string(m.Payload) != "4" {
		t.Fatalf("payload %q, want 4 (stream order)", m.Payload)
	}
}

func TestOwnPendingFirstAfterCrash(t *testing.T) {
	u := testURL(t, "")
	tr := openTransport(t, u)
	sub := newSub(t, tr, "g", "proc-a", time.Hour, 2, transports.Since{})
	ch, _ := subscribe(t, sub, "e.x")
	old := publish(t, tr, "e.x", "old-1", "old-2")
	receive(t, ch, 5*time.Second)
	receive(t, ch, 5*time.Second)
	// Crash: the handlers never ack; the process goes away.
	_ = sub.Close()
	if n := pendingCount(t, tr, "e.x", "g"); n != 2 {
		t.Fatalf("pending after crash = %d, want 2", n)
	}
	publish(t, tr, "e.x", "new-1")

	// Restarted with the same name: its own pending entries come first, at
	// once (AckTimeout is an hour), counted as second deliveries.
	tr2 := openTransport(t, u)
	sub2 := newSub(t, tr2, "g", "proc-a", time.Hour, 1, transports.Since{})
	ch2, _ := subscribe(t, sub2, "e.x")
	for i, want := range old {
		m := receive(t, ch2, 5*time.Second)
		if m.UUID != want || attempt(m) != 2 {
			t.Fatalf("delivery %d: %s attempt %d, want %s attempt 2", i, m.UUID, attempt(m), want)
		}
		m.Ack()
	}
	m := receive(t, ch2, 5*time.Second)
	if string(m.Payload) != "new-1" || attempt(m) != 1 {
		t.Fatalf("then %q attempt %d, want new-1 attempt 1", m.Payload, attempt(m))
	}
	m.Ack()
}

func TestReclaimAfterAckTimeout(t *testing.T) {
	u := testURL(t, "")
	tr := openTransport(t, u)
	const ackTimeout = 300 * time.Millisecond
	dead := newSub(t, tr, "g", "dead", ackTimeout, 1, transports.Since{})
	chDead, _ := subscribe(t, dead, "e.x")
	ids := publish(t, tr, "e.x", "x")
	receive(t, chDead, 5*time.Second)
	_ = dead.Close() // stops without acking

	live := newSub(t, openTransport(t, u), "g", "live", ackTimeout, 1, transports.Since{})
	chLive, _ := subscribe(t, live, "e.x")
	m := receive(t, chLive, 10*time.Second)
	if m.UUID != ids[0] || attempt(m) != 2 {
		t.Fatalf("claimed %s attempt %d, want %s attempt 2", m.UUID, attempt(m), ids[0])
	}
	m.Ack()
	eventually(t, 5*time.Second, "ack of the claimed entry", func() bool { return pendingCount(t, tr, "e.x", "g") == 0 })
}

func TestSlowHandlerKeepsItsClaim(t *testing.T) {
	u := testURL(t, "")
	// Kept alive every AckTimeout/3: a second and a half leaves a stall of
	// up to a second before the other consumer may claim it.
	const ackTimeout = 1500 * time.Millisecond
	tr := openTransport(t, u)
	slow := newSub(t, tr, "g", "slow", ackTimeout, 1, transports.Since{})
	chSlow, _ := subscribe(t, slow, "e.x")
	publish(t, tr, "e.x", "x")
	m := receive(t, chSlow, 5*time.Second)

	other := newSub(t, openTransport(t, u), "g", "other", ackTimeout, 1, transports.Since{})
	chOther, _ := subscribe(t, other, "e.x")
	noMessage(t, chOther, 5*ackTimeout) // the slow handler's entry is not reclaimed
	m.Ack()
	eventually(t, 5*time.Second, "ack", func() bool { return pendingCount(t, tr, "e.x", "g") == 0 })
}

func TestNackRedeliversWithDurableCount(t *testing.T) {
	tr := openTransport(t, testURL(t, ""))
	sub := newSub(t, tr, "g", "c", time.Minute, 1, transports.Since{})
	ch, _ := subscribe(t, sub, "e.x")
	ids := publish(t, tr, "e.x", "x")
	m := receive(t, ch, 5*time.Second)
	const delay = 300 * time.Millisecond
	transports.Info(m).RetryAfter = delay
	nackedAt := time.Now()
	m.Nack()
	m2 := receive(t, ch, 5*time.Second)
	if since := time.Since(nackedAt); since < delay {
		t.Fatalf("redelivered after %s, before RetryAfter %s", since, delay)
	}
	if m2.UUID != ids[0] || attempt(m2) != 2 {
		t.Fatalf("redelivered %s attempt %d, want %s attempt 2", m2.UUID, attempt(m2), ids[0])
	}
	// The engine records the attempt once it handed the message out.
	eventually(t, 5*time.Second, "attempt 2 recorded", func() bool {
		p, err := tr.Client().XPendingExt(context.Background(), &redis.XPendingExtArgs{
			Stream: tr.StreamKey("e.x"), Group: "g", Start: "-", End: "+", Count: 10,
		}).Result()
		return err == nil && len(p) == 1 && p[0].RetryCount == 2
	})
	m2.Ack()
	eventually(t, 5*time.Second, "ack", func() bool { return pendingCount(t, tr, "e.x", "g") == 0 })
}

func TestPoisonEntryDoesNotStopTheSubscription(t *testing.T) {
	tr := openTransport(t, testURL(t, ""))
	sub := newSub(t, tr, "g", "c", time.Minute, 1, transports.Since{})
	ch, _ := subscribe(t, sub, "e.x")
	ctx := context.Background()
	key := tr.StreamKey("e.x")
	for _, vals := range [][]any{
		{"garbage", "1"}, // no UUID field
		{fieldUUID, "p2", fieldMetadata, "\xc1\xc1", fieldPayload, "x"}, // bad msgpack
	} {
		if err := tr.Client().XAdd(ctx, &redis.XAddArgs{Stream: key, Values: vals}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	good := publish(t, tr, "e.x", "good")
	for i := range 2 {
		m := receive(t, ch, 5*time.Second)
		if transports.Info(m).Poison == nil {
			t.Fatalf("poison entry %d handed out without Poison set: %s", i, m.UUID)
		}
		m.Ack()
	}
	m := receive(t, ch, 5*time.Second)
	if m.UUID != good[0] || transports.Info(m).Poison != nil {
		t.Fatalf("after the poison entries got %s (poison %v)", m.UUID, transports.Info(m).Poison)
	}
	m.Ack()
}

// Nothing is read ahead of the handlers: with Concurrency 2 and one
// message taken, only the second slot's entry is read; at close it goes
// back uncounted and claimable at once, the acked one is gone and the rest
// were never read.
func TestCloseFlushesAcksAndReleasesUnhandled(t *testing.T) {
	tr := openTransport(t, testURL(t, ""))
	sub := newSub(t, tr, "g", "c", time.Hour, 2, transports.Since{})
	ch, cancel := subscribe(t, sub, "e.x")
	publish(t, tr, "e.x", "1", "2", "3", "4")
	m := receive(t, ch, 5*time.Second)
	eventually(t, 5*time.Second, "the second slot's read", func() bool { return pendingCount(t, tr, "e.x", "g") == 2 })
	cancel()
	// Nobody reads ch until the slot has given its entry back: a reader
	// waiting on ch would race the slot's send against the cancelled
	// context, and a send that wins hands the entry out (counted) to a
	// loop that drops it. With no reader the slot can only give it back.
	eventually(t, 5*time.Second, "the unhandled entry given back", func() bool {
		p, err := tr.Client().XPendingExt(context.Background(), &redis.XPendingExtArgs{
			Stream: tr.StreamKey("e.x"), Group: "g", Start: "-", End: "+", Count: 10,
		}).Result()
		if err != nil {
			return false
		}
		for _, e := range p {
			if e.Idle >= time.Hour {
				return true
			}
		}
		return false
	})
	for range ch { // the channel closes once reading stopped
		t.Fatal("a message was handed out after the Subscribe context ended")
	}
	m.Ack()
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	p, err := tr.Client().XPendingExt(context.Background(), &redis.XPendingExtArgs{
		Stream: tr.StreamKey("e.x"), Group: "g", Start: "-", End: "+", Count: 10,
	}).Result()
	if err != nil || len(p) != 1 {
		t.Fatalf("XPENDING = %+v, %v; want the one entry read and not handed out", p, err)
	}
	// Released: claimable at once, and not counted as delivered.
	if e := p[0]; e.Idle < time.Hour || e.RetryCount != 0 {
		t.Fatalf("entry %s idle %s count %d; want idle >= AckTimeout and count 0", e.ID, e.Idle, e.RetryCount)
	}
}

func TestSinceBeginningAndTime(t *testing.T) {
	tr := openTransport(t, testURL(t, ""))
	publish(t, tr, "e.x", "before")
	time.Sleep(5 * time.Millisecond) // the next entry gets a later millisecond
	cut := time.Now()
	publish(t, tr, "e.x", "after")

	for _, tc := range []struct {
		since transports.Since
		want  []string
	}{
		{transports.SinceBeginning, []string{"before", "after"}},
		{transports.SinceTime(cut), []string{"after"}},
		{transports.Since{}, []string{"later"}},
	} {
		// Concurrency 1: the order of delivery is part of what is checked.
		sub := newSub(t, tr, "g-"+tc.since.String(), "c", time.Minute, 1, tc.since)
		ch, _ := subscribe(t, sub, "e.x")
		if tc.since.IsNew() {
			publish(t, tr, "e.x", "later")
		}
		for _, w := range tc.want {
			m := receive(t, ch, 5*time.Second)
			if string(m.Payload) != w {
				t.Fatalf("since %s: got %q, want %q", tc.since, m.Payload, w)
			}
			m.Ack()
		}
		noMessage(t, ch, 50*time.Millisecond)
	}
}

func TestRetentionTrimsApproximately(t *testing.T) {
	tr := openTransport(t, testURL(t, "maxlen=10&maxlen.e.keep=0"))
	msgs := make([]*message.Message, 500)
	for i := range msgs {
		msgs[i] = message.NewMessage(fmt.Sprint(i), []byte("x"))
	}
	if err := tr.Publish("e.x", msgs...); err != nil {
		t.Fatal(err)
	}
	if err := tr.Publish("e.keep", msgs...); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// MAXLEN ~ trims whole nodes (100 entries by default).
	if n := tr.Client().XLen(ctx, tr.StreamKey("e.x")).Val(); n < 10 || n > 10+100 {
		t.Fatalf("XLEN = %d, want about 10", n)
	}
	if n := tr.Client().XLen(ctx, tr.StreamKey("e.keep")).Val(); n != 500 {
		t.Fatalf("XLEN of untrimmed event = %d, want 500", n)
	}
}

func TestIdleConsumerCleanupKeepsPending(t *testing.T) {
	tr := openTransport(t, testURL(t, "consumer_idle=200ms"))
	ctx := context.Background()
	key := tr.StreamKey("e.x")
	c := tr.Client()
	if err := createGroup(ctx, c, key, "g", "$"); err != nil {
		t.Fatal(err)
	}
	publish(t, tr, "e.x", "held")
	// "holder" reads the entry and dies holding it; "empty" holds nothing.
	if err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "holder", Streams: []string{key, ">"}, Count: 1, Block: -1}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.XGroupCreateConsumer(ctx, key, "g", "empty").Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(250 * time.Millisecond) // both become idle past consumer_idle
	sub := newSub(t, tr, "g", "janitor", time.Hour, 1, transports.Since{})
	subscribe(t, sub, "e.x")
	names := func() map[string]int64 {
		cs, err := c.XInfoConsumers(ctx, key, "g").Result()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for _, x := range cs {
			out[x.Name] = x.Pending
		}
		return out
	}
	eventually(t, 5*time.Second, "idle empty consumer deleted", func() bool { _, ok := names()["empty"]; return !ok })
	if p, ok := names()["holder"]; !ok || p != 1 {
		t.Fatalf("consumer holding an entry: present %v pending %d; want kept with 1", ok, p)
	}
}

func TestDeadLetterStore(t *testing.T) {
	tr := openTransport(t, testURL(t, ""))
	ctx := context.Background()
	// Two groups on one event; the dead letter of g1 is replayed to g1 only.
	g1 := newSub(t, tr, "svc-one", "c", time.Minute, 4, transports.Since{})
	g2 := newSub(t, tr, "svc-two", "c", time.Minute, 4, transports.Since{})
	ch1, _ := subscribe(t, g1, "e.x")
	ch2, _ := subscribe(t, g2, "e.x")
	ids := publish(t, tr, "e.x", "payload")
	m1 := receive(t, ch1, 5*time.Second)
	receive(t, ch2, 5*time.Second).Ack()
	if err := tr.DeadLetter(m1.Context(), "svc-one", m1, "boom", 3); err != nil {
		t.Fatal(err)
	}
	m1.Ack()

	dls, err := tr.DeadLetters(ctx, "svc-one", 0)
	if err != nil || len(dls) != 1 {
		t.Fatalf("DeadLetters = %+v, %v", dls, err)
	}
	dl := dls[0]
	if dl.Reason != "boom" || dl.Attempts != 3 || dl.Group != "svc-one" || dl.Topic != "e.x" ||
		dl.Message.UUID != ids[0] || string(dl.Message.Payload) != "payload" || dl.DeadAt.IsZero() {
		t.Fatalf("dead letter = %+v (message %s %q)", dl, dl.Message.UUID, dl.Message.Payload)
	}
	// The raw entry: original fields plus reason, attempts, group.
	raw, err := tr.Client().XRange(ctx, tr.DeadLetterKey("svc-one"), "-", "+").Result()
	if err != nil || len(raw) != 1 {
		t.Fatal(raw, err)
	}
	for _, f := range []string{fieldUUID, fieldMetadata, fieldPayload, fieldReason, fieldAttempts, fieldGroup, fieldTopic, fieldDeadAt} {
		if _, ok := raw[0].Values[f]; !ok {
			t.Fatalf("dead-letter entry lacks field %s: %v", f, raw[0].Values)
		}
	}

	if err := tr.ReplayDeadLetter(ctx, "svc-one", dl.ID); err != nil {
		t.Fatal(err)
	}
	m := receive(t, ch1, 5*time.Second)
	if m.UUID != ids[0] || attempt(m) != 1 {
		t.Fatalf("replayed %s attempt %d", m.UUID, attempt(m))
	}
	m.Ack()
	noMessage(t, ch2, 200*time.Millisecond) // the other group acks the replay unseen
	eventually(t, 5*time.Second, "svc-two acked the replay", func() bool { return pendingCount(t, tr, "e.x", "svc-two") == 0 })
	if dls, _ := tr.DeadLetters(ctx, "svc-one", 0); len(dls) != 0 {
		t.Fatalf("replayed dead letter still listed: %+v", dls)
	}
	if err := tr.ReplayDeadLetter(ctx, "svc-one", dl.ID); !errors.Is(err, transports.ErrNotFound) {
		t.Fatalf("replaying a missing dead letter: %v; want ErrNotFound", err)
	}
	for _, bad := range []string{"garbage", strings.Split(dl.ID, "-")[0], "99999999999999999999-0"} {
		// The millisecond alone would replay one entry and delete another.
		if err := tr.ReplayDeadLetter(ctx, "svc-one", bad); !errors.Is(err, transports.ErrNotFound) || strings.Contains(err.Error(), "ERR") {
			t.Fatalf("replaying %q, no full stream entry ID: %v; want ErrNotFound, not the server's error", bad, err)
		}
	}

	for range 3 {
		if err := tr.DeadLetter(ctx, "svc-one", message.NewMessage("x", nil), "r", 1); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := tr.PurgeDeadLetters(ctx, "svc-one"); err != nil || n != 3 {
		t.Fatalf("PurgeDeadLetters = %d, %v; want 3", n, err)
	}
}

// A nack with a delay longer than AckTimeout keeps the entry with the
// consumer that nacked it: nobody else claims it while it waits.
func TestLongRetryDelayIsNotReclaimed(t *testing.T) {
	u := testURL(t, "")
	const ackTimeout = 500 * time.Millisecond
	tr := openTransport(t, u)
	a := newSub(t, tr, "g", "a", ackTimeout, 1, transports.Since{})
	chA, _ := subscribe(t, a, "e.x")
	ids := publish(t, tr, "e.x", "x")
	m := receive(t, chA, 5*time.Second)

	b := newSub(t, openTransport(t, u), "g", "b", ackTimeout, 1, transports.Since{})
	chB, _ := subscribe(t, b, "e.x")
	transports.Info(m).RetryAfter = 4 * ackTimeout
	m.Nack()
	noMessage(t, chB, 3*ackTimeout)
	m2 := receive(t, chA, 5*time.Second)
	if m2.UUID != ids[0] || attempt(m2) != 2 {
		t.Fatalf("redelivered %s attempt %d, want %s attempt 2", m2.UUID, attempt(m2), ids[0])
	}
	m2.Ack()
	noMessage(t, chB, 100*time.Millisecond)
}

// TestStreamDeletedUnderSubscriber: deleting the stream unblocks the
// subscriber's read with an error (a broken read); reading its own pending
// then finds no group. The subscriber creates the group again and hands
// out events fired afterwards, instead of retrying the pending read forever.
func TestStreamDeletedUnderSubscriber(t *testing.T) {
	tr := openTransport(t, testURL(t, ""))
	s := newSub(t, tr, "g", "c1", time.Minute, 1, transports.Since{})
	ch, _ := subscribe(t, s, "e.gone")
	publish(t, tr, "e.gone", `{"n":1}`)
	if m := receive(t, ch, 5*time.Second); !m.Ack() {
		t.Fatal("ack refused")
	}
	eventually(t, 5*time.Second, "ack", func() bool { return pendingCount(t, tr, "e.gone", "g") == 0 })
	if err := tr.Client().Del(context.Background(), tr.StreamKey("e.gone")).Err(); err != nil {
		t.Fatal(err)
	}
	ids := publish(t, tr, "e.gone", `{"n":2}`)
	m := receive(t, ch, 15*time.Second)
	if m.UUID != ids[0] {
		t.Fatalf("handed out %s, want %s", m.UUID, ids[0])
	}
	m.Ack()
}

// A stream key that holds another type (another program's key under the
// prefix) is a configuration to change, not an outage to wait out.
func TestSubscribeToAKeyOfAnotherType(t *testing.T) {
	tr := openTransport(t, testURL(t, ""))
	ctx := context.Background()
	if err := tr.Client().Set(ctx, tr.StreamKey("wrong.type"), "not a stream", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	sub := newSub(t, tr, "svc-wrong", "proc-1", time.Minute, 1, transports.Since{})
	if _, err := sub.Subscribe(ctx, "wrong.type"); !errors.Is(err, transports.ErrInvalidConfig) {
		t.Fatalf("Subscribe to a string key: %v; want ErrInvalidConfig", err)
	}
}
