package redisstream

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/idempotency"
	"github.com/busline/busline/idempotency/redisstore"
	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/driver"
)

// Once the idempotency middleware announced its group to the transport's
// store, a read that follows a full one (entries are waiting) claims the
// keys of what it reads in the same round trip: Begin adopts the claim,
// Nack of an entry that never reached Begin releases it, and a duplicate
// whose key is done is not claimed.
func TestReadClaimsAhead(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	holder := idempotency.Holder{Process: "p1", Run: "r1"}
	tr, store, sub := claimingSub(ctx, t, holder)
	ids := publish(t, tr, "ahead", "a", "b", "c", "d")
	c := redis.NewClient(&redis.Options{Addr: testAddr()})
	defer c.Close()
	key := func(id string) string { return store.RedisKey(idempotency.Key("g", id)) }
	read := func(n int) *driver.Message {
		t.Helper()
		msgs, err := sub.Receive(ctx, n, time.Second)
		if err != nil || len(msgs) != n {
			t.Fatalf("Receive(%d) = %d messages, %v", n, len(msgs), err)
		}
		return msgs[n-1]
	}

	read(2) // a blocking read: it claims nothing
	for _, id := range ids[:2] {
		if n := c.Exists(ctx, key(id)).Val(); n != 0 {
			t.Fatalf("a blocking read claimed %s", id)
		}
	}
	m3 := read(1) // after a full read: claims ahead
	if m3.Message.UUID != ids[2] {
		t.Fatalf("read %s, want %s", m3.Message.UUID, ids[2])
	}
	token := c.Get(ctx, key(ids[2])).Val()
	if !strings.HasPrefix(token, "p=p1;r=r1;") {
		t.Fatalf("key of the event read holds %q, want a lease token of p1's run r1", token)
	}
	state, lease, err := store.Begin(idempotency.WithHolder(ctx, holder), idempotency.Key("g", ids[2]), time.Minute)
	if err != nil || state != idempotency.Fresh || lease.Token != token {
		t.Fatalf("Begin = %v, %+v, %v; want Fresh with the read's claim", state, lease, err)
	}
	if err := store.Commit(ctx, lease, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := sub.Ack(ctx, []driver.AckID{m3.AckID}); err != nil {
		t.Fatal(err)
	}
	if v := c.Get(ctx, key(ids[2])).Val(); v != "done" {
		t.Fatalf("the ack of an adopted claim left the key %q, want done", v)
	}

	m4 := read(1)
	if n := c.Exists(ctx, key(ids[3])).Val(); n != 1 {
		t.Fatal("the second read after a full one claimed nothing")
	}
	// A release that fails fails the Nack, which the engine retries: the
	// entry is never given back with its key still held.
	cancelled, cancelNow := context.WithCancel(ctx)
	cancelNow()
	if err := sub.Nack(cancelled, []driver.Nack{{AckID: m4.AckID, Attempts: 1}}); err == nil {
		t.Fatal("Nack whose release could not be sent succeeded")
	}
	if n := c.Exists(ctx, key(ids[3])).Val(); n != 1 {
		t.Fatal("the claim is gone though its release failed")
	}
	if err := sub.Nack(ctx, []driver.Nack{{AckID: m4.AckID, Attempts: 1}}); err != nil {
		t.Fatal(err)
	}
	if n := c.Exists(ctx, key(ids[3])).Val(); n != 0 {
		t.Fatal("the Nack of an entry whose claim no Begin adopted left the key held")
	}

	// A duplicate of the done event: read ahead, its key is not claimed.
	for _, m := range []*message.Message{eventMessage(ids[2], "c again"), eventMessage(randomHex(8), "e")} {
		if err := tr.Publish("ahead", m); err != nil {
			t.Fatal(err)
		}
	}
	md := read(1)
	if md.Message.UUID != ids[2] {
		t.Fatalf("read %s, want the duplicate %s", md.Message.UUID, ids[2])
	}
	if v := c.Get(ctx, key(ids[2])).Val(); v != "done" {
		t.Fatalf("the read of a duplicate changed its done key to %q", v)
	}
	if state, _, err := store.Begin(idempotency.WithHolder(ctx, holder), idempotency.Key("g", ids[2]), time.Minute); err != nil || state != idempotency.Done {
		t.Fatalf("Begin of the duplicate = %v, %v; want Done", state, err)
	}

	// Several claims released by one Nack: every key is free after it.
	more := publish(t, tr, "ahead", "g", "h")
	msgs, err := sub.Receive(ctx, 3, time.Second) // "e", then g and h
	if err != nil || len(msgs) != 3 {
		t.Fatalf("Receive(3) = %d messages, %v", len(msgs), err)
	}
	var nacks []driver.Nack
	for _, m := range msgs {
		nacks = append(nacks, driver.Nack{AckID: m.AckID, Attempts: 1})
	}
	for _, id := range more {
		if n := c.Exists(ctx, key(id)).Val(); n != 1 {
			t.Fatalf("the read after a full one did not claim %s", id)
		}
	}
	if err := sub.Nack(ctx, nacks); err != nil {
		t.Fatal(err)
	}
	for _, id := range more {
		if n := c.Exists(ctx, key(id)).Val(); n != 0 {
			t.Fatalf("the Nack of three entries left the claim of %s held", id)
		}
	}
}

func eventMessage(id, payload string) *message.Message {
	m := message.NewMessage(id, []byte(payload))
	m.Metadata.Set("ce-type", "ahead")
	return m
}

// A read with claims that finds its group gone creates it again and reads
// from the start of the stream, as a plain read does; a server error other
// than NOGROUP turns claiming ahead off for the subscription, keeps its
// sound connection, and counts the read as lost (it may have taken
// entries).
func TestReadClaimingErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tr, _, sub := claimingSub(ctx, t, idempotency.Holder{})
	publish(t, tr, "ahead", "a", "b")
	if msgs, err := sub.Receive(ctx, 1, time.Second); err != nil || len(msgs) != 1 {
		t.Fatalf("Receive = %d, %v", len(msgs), err)
	}
	c := redis.NewClient(&redis.Options{Addr: testAddr()})
	defer c.Close()
	if err := c.XGroupDestroy(ctx, tr.StreamKey("ahead"), "g").Err(); err != nil {
		t.Fatal(err)
	}
	if msgs, err := sub.Receive(ctx, 2, time.Second); err != nil || len(msgs) != 2 {
		t.Fatalf("Receive after the group was destroyed = %d, %v; want both entries from the group made again", len(msgs), err)
	}

	plan, ok := sub.claimPlan()
	if !ok {
		t.Fatal("no claim plan")
	}
	serverErr := c.Do(ctx, "NO-SUCH-COMMAND").Err()
	id := sub.connID.Load()
	if err := sub.scriptFailed(ctx, plan, plan.TokenBase(), 1, time.Now(), serverErr); err == nil {
		t.Fatal("scriptFailed returned nil for a server error")
	}
	if sub.scripted() {
		t.Fatal("still reading with the script after a server error")
	}
	if sub.connID.Load() != id || id == 0 {
		t.Fatalf("the reader's connection was dropped (%d -> %d) for a server error", id, sub.connID.Load())
	}
	sub.mu.Lock()
	lost := len(sub.lost)
	sub.mu.Unlock()
	if lost != 1 {
		t.Fatalf("%d lost reads recorded, want 1", lost)
	}
}

// claimingSub opens a subscription of group "g" to topic "ahead" on a
// transport of its own, whose store the middleware of group "g" announced
// itself to (as the bus does), so that its reads may claim ahead.
func claimingSub(ctx context.Context, t *testing.T, holder idempotency.Holder) (*Transport, *redisstore.Store, *redisSub) {
	t.Helper()
	tr := openTransport(t, testURL(t, ""))
	st, err := tr.IdempotencyStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	store := st.(*redisstore.Store)
	store.ExpectBegins("g", holder, time.Minute)
	d, err := tr.Driver().Open(ctx, "ahead", transports.SubscriberConfig{Group: "g", Consumer: "p1", AckTimeout: time.Minute, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return tr, store, d.(*redisSub)
}

// A read that follows a full one reads ahead of the free slots: Redis
// counts the entries for the free slots (the read), not those read
// ahead, until Record counts one handed out; after a crash (a reopen
// without Close's give-back), own pending shows each entry's attempts.
func TestReadAheadLeavesEntriesUncounted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tr := openTransport(t, testURL(t, ""))
	open := func() *redisSub {
		d, err := tr.Driver().Open(ctx, "ahead", transports.SubscriberConfig{Group: "g", Consumer: "p1", AckTimeout: time.Minute, Concurrency: 2})
		if err != nil {
			t.Fatal(err)
		}
		return d.(*redisSub)
	}
	sub := open()
	if ra := sub.Capabilities().ReadAhead; ra != 4 {
		t.Fatalf("ReadAhead %d at concurrency 2, want 4 (twice the concurrency)", ra)
	}
	ids := publish(t, tr, "ahead", "a", "b", "c", "d", "e", "f", "g")
	first, err := sub.ReceiveAhead(ctx, 1, 4, time.Second)
	if err != nil || len(first) != 1 || !first[0].Recorded {
		t.Fatalf("first read = %d messages, %v; want one counted (a blocking read reads only the free slots)", len(first), err)
	}
	more, err := sub.ReceiveAhead(ctx, 1, 4, time.Second)
	if err != nil || len(more) != 5 {
		t.Fatalf("read after a full one = %d messages, %v; want 1 free + 4 ahead", len(more), err)
	}
	for i, m := range more {
		if m.Recorded != (i == 0) || m.Attempts != 0 {
			t.Errorf("entry %d of the read: Recorded %v Attempts %d; want only the first counted", i, m.Recorded, m.Attempts)
		}
	}
	// One XCLAIM per count.
	if err := sub.Record(ctx, []driver.Attempt{
		{AckID: more[1].AckID, Attempts: 3}, {AckID: more[2].AckID, Attempts: 1},
	}); err != nil {
		t.Fatal(err)
	}
	// A crash: the subscription goes without giving anything back.
	sub.closed.Store(true)
	_ = sub.rc.Close()
	re := open()
	t.Cleanup(func() { _ = re.Close() })
	pending, _, err := re.Pending(ctx, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{ids[0]: 1, ids[1]: 1, ids[2]: 3, ids[3]: 1, ids[4]: 0, ids[5]: 0}
	if len(pending) != len(want) {
		t.Fatalf("own pending after the crash: %d entries, want %d", len(pending), len(want))
	}
	for _, m := range pending {
		if n, ok := want[m.Message.UUID]; !ok || m.Attempts != n {
			t.Errorf("own pending %s: Attempts %d, want %d (read ahead and never handed out: 0)", m.Message.UUID, m.Attempts, n)
		}
	}
}
