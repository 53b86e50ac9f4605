package redisstream

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wrs "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/transports"
)

type priceChanged struct {
	SKU   string `json:"sku"`
	Price int    `json:"price"`
}

// A plain watermill-redisstream subscriber, with its default unmarshaller,
// reads an event fired by Busline.
func TestWatermillSubscriberReadsBuslineEvent(t *testing.T) {
	u := testURL(t, "")
	b, err := bus.New(bus.Config{Service: "pricing", Process: "p1", Transport: u})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ev := bus.NewEvent[priceChanged]("competitor_prices", "changed")
	prefix := b.Transport().(*Transport).Options().Prefix

	client := redis.NewClient(&redis.Options{Addr: testAddr()})
	t.Cleanup(func() { _ = client.Close() })
	sub, err := wrs.NewSubscriber(wrs.SubscriberConfig{
		Client: client, ConsumerGroup: "plain-watermill", OldestId: "0",
	}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	id, err := bus.Fire(ctx, b, ev, priceChanged{SKU: "A-1", Price: 1299}, bus.WithMetadata(map[string]string{"tenant": "acme"}))
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := sub.Subscribe(ctx, prefix+ev.Name())
	if err != nil {
		t.Fatal(err)
	}
	var m *message.Message
	select {
	case m = <-msgs:
	case <-time.After(10 * time.Second):
		t.Fatal("the Watermill subscriber got nothing")
	}
	m.Ack()
	var got priceChanged
	if err := json.Unmarshal(m.Payload, &got); err != nil {
		t.Fatal(err)
	}
	if m.UUID != id || got != (priceChanged{"A-1", 1299}) {
		t.Fatalf("Watermill read UUID %s payload %+v; want %s {A-1 1299}", m.UUID, got, id)
	}
	for k, want := range map[string]string{
		bus.MetaID: id, bus.MetaType: ev.Name(), bus.MetaSource: "/pricing", bus.MetaSpecVersion: "1.0",
		bus.MetaContentType: "application/json", "tenant": "acme",
	} {
		if v := m.Metadata.Get(k); v != want {
			t.Errorf("metadata %s = %q, want %q", k, v, want)
		}
	}
}

// Busline reads what a plain watermill-redisstream publisher wrote.
func TestBuslineReadsWatermillEntry(t *testing.T) {
	tr := openTransport(t, testURL(t, ""))
	sub := newSub(t, tr, "g", "c", time.Minute, 1, transports.Since{})
	ch, _ := subscribe(t, sub, "e.x")

	pub, err := wrs.NewPublisher(wrs.PublisherConfig{Client: tr.Client()}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	// Not closed: it would close the transport's client.
	in := message.NewMessage(watermill.NewUUID(), []byte(`{"n":1}`))
	in.Metadata.Set("k", "v")
	if err := pub.Publish(tr.StreamKey("e.x"), in); err != nil {
		t.Fatal(err)
	}
	m := receive(t, ch, 5*time.Second)
	if m.UUID != in.UUID || string(m.Payload) != `{"n":1}` || m.Metadata.Get("k") != "v" || transports.Info(m).Poison != nil {
		t.Fatalf("read %s %q %v (poison %v)", m.UUID, m.Payload, m.Metadata, transports.Info(m).Poison)
	}
	m.Ack()
}

func TestReconnectAfterRedisRestart(t *testing.T) {
	srv := startRedisServer(t)
	tr := openTransport(t, srv.url(""))
	sub := newSub(t, tr, "g", "c", time.Second, 4, transports.Since{})
	ch, _ := subscribe(t, sub, "e.x")
	publish(t, tr, "e.x", "before")
	receive(t, ch, 5*time.Second).Ack()
	eventually(t, 5*time.Second, "the ack to reach Redis", func() bool { return pendingCount(t, tr, "e.x", "g") == 0 })

	srv.kill()
	if err := tr.Publish("e.x", message.NewMessage("lost?", []byte("during"))); err == nil {
		t.Fatal("Publish during the outage returned nil")
	}
	srv.start()

	// Publish works again once go-redis has reconnected, and the
	// subscription resumes.
	var ids []string
	eventually(t, 20*time.Second, "Publish to succeed after the restart", func() bool {
		m := message.NewMessage(randomHex(8), []byte("after"))
		if tr.Publish("e.x", m) != nil {
			return false
		}
		ids = append(ids, m.UUID)
		return true
	})
	m := receive(t, ch, 20*time.Second)
	if m.UUID != ids[0] {
		t.Fatalf("after the restart got %s %q, want %s", m.UUID, m.Payload, ids[0])
	}
	m.Ack()
	eventually(t, 10*time.Second, "the ack to reach the restarted Redis", func() bool { return pendingCount(t, tr, "e.x", "g") == 0 })
}
