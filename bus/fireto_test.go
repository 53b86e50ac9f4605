package bus_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/bus"
)

// FireTo builds the event exactly as Fire does and hands it to another
// publish path: here a slice; in the outbox package, a database table.
func ExampleFireTo() {
	b, err := bus.New(bus.Config{Service: "orders"})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	placed := bus.NewEvent[map[string]string]("orders", "placed")
	var kept []*message.Message
	id, err := bus.FireTo(context.Background(), b, placed, map[string]string{"order_id": "A-1"},
		func(_ context.Context, topic string, msg *message.Message) error {
			kept = append(kept, msg)
			return nil
		})
	if err != nil {
		panic(err)
	}
	m := kept[0]
	fmt.Println(m.UUID == id, m.Metadata.Get(bus.MetaID) == id, m.Metadata.Get(bus.MetaType), m.Metadata.Get(bus.MetaSource), string(m.Payload))
	// Output: true true orders.placed /orders {"order_id":"A-1"}
}

// TestFireTo: the publish function gets the envelope Fire would publish
// (WithEventID, WithMetadata without overriding the envelope), its error
// fails the call, and a closed bus fires nothing.
func TestFireTo(t *testing.T) {
	b, err := bus.New(bus.Config{Service: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	ev := bus.NewEvent[int]("orders", "counted")
	var got *message.Message
	keep := func(_ context.Context, topic string, msg *message.Message) error {
		if topic != ev.Name() {
			t.Errorf("topic %q, want %q", topic, ev.Name())
		}
		got = msg
		return nil
	}
	id, err := bus.FireTo(context.Background(), b, ev, 7, keep,
		bus.WithEventID("ev-1"), bus.WithMetadata(map[string]string{"k": "v", bus.MetaType: "forged"}))
	if err != nil || id != "ev-1" || got.UUID != "ev-1" {
		t.Fatalf("FireTo = %q, %v; message %v", id, err, got)
	}
	if got.Metadata.Get("k") != "v" || got.Metadata.Get(bus.MetaType) != ev.Name() || string(got.Payload) != "7" {
		t.Fatalf("metadata %v payload %s", got.Metadata, got.Payload)
	}
	boom := errors.New("boom")
	if _, err := bus.FireTo(context.Background(), b, ev, 1, func(context.Context, string, *message.Message) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("publish error: %v, want it wrapped", err)
	}
	if _, err := bus.FireTo(context.Background(), b, ev, 1, nil); !errors.Is(err, bus.ErrInvalidConfig) {
		t.Fatalf("nil publish: %v, want ErrInvalidConfig", err)
	}
	_ = b.Close()
	if _, err := bus.FireTo(context.Background(), b, ev, 2, keep); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("FireTo on a closed bus: %v, want ErrClosed", err)
	}
}
