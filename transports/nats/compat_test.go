package nats

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wjs "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/jetstream"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go/jetstream"
)

// Busline's message layout is watermill-nats's NATSMarshaler: watermill-
// nats's JetStream unmarshaller reads a Busline event, and Busline reads
// what watermill-nats's marshaller writes.
func TestWatermillNATSCompat(t *testing.T) {
	tr := openTransport(t, testURL(t, "", ""))
	s := openSub(t, tr, "svc-work", time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Busline → watermill-nats.
	ours := message.NewMessage(watermill.NewUUID(), []byte(`{"n":1}`))
	ours.Metadata.Set("ce-type", testEvent)
	if err := tr.Publish(testEvent, ours); err != nil {
		t.Fatal(err)
	}
	c, err := tr.JetStream().OrderedConsumer(ctx, tr.Options().StreamName(testEvent), jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	wm, err := wjs.DefaultUnmarshaler{}.Unmarshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	if wm.UUID != ours.UUID || string(wm.Payload) != `{"n":1}` || wm.Metadata.Get("ce-type") != testEvent || len(wm.Metadata) != 1 {
		t.Fatalf("watermill-nats read {%s %s %v}", wm.UUID, wm.Payload, wm.Metadata)
	}
	receive(t, s, 1, 5*time.Second)

	// watermill-nats → Busline.
	theirs := message.NewMessage(watermill.NewUUID(), []byte(`{"n":2}`))
	theirs.Metadata.Set("k", "v")
	nm, err := (&wmnats.NATSMarshaler{}).Marshal(tr.Options().Subject(testEvent), theirs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.JetStream().PublishMsg(ctx, nm); err != nil {
		t.Fatal(err)
	}
	got := receive(t, s, 1, 5*time.Second)[0]
	if got.Poison != nil || got.Message.UUID != theirs.UUID || got.Message.Metadata.Get("k") != "v" || string(got.Message.Payload) != `{"n":2}` {
		t.Fatalf("Busline read {%s %s %v poison %v}", got.Message.UUID, got.Message.Payload, got.Message.Metadata, got.Poison)
	}
}
