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
	raw := testURL(t, "")
	tr := openTransport(t, raw)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, _ := tr.IdempotencyStore(ctx)
	store := st.(*redisstore.Store)
	holder := idempotency.Holder{Process: "p1", Run: "r1"}
	store.ExpectBegins("g", holder, time.Minute)
	sub, err := tr.Driver().Open(ctx, "ahead", transports.SubscriberConfig{Group: "g", Consumer: "p1", AckTimeout: time.Minute, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
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
}

func eventMessage(id, payload string) *message.Message {
	m := message.NewMessage(id, []byte(payload))
	m.Metadata.Set("ce-type", "ahead")
	return m
}
