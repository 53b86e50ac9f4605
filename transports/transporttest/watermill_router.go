package transporttest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
)

// RunWatermillRouter runs a transport's subscriber under a Watermill
// Router, with no Busline middleware, and checks that it behaves as
// Watermill's own drivers do: a handler's nil acks (the message context
// ends, the message does not come back), a handler's error nacks (the
// message context ends and the message comes back as the next attempt),
// and closing the router ends the context of a message whose handler is
// still running, which stays pending and comes back to the group.
func RunWatermillRouter(t *testing.T, url func(t testing.TB) string) {
	u := url(t)
	ctx := context.Background()
	open := func() transports.Transport {
		tr, err := transports.Open(ctx, u, transports.OpenOptions{Service: "watermill-router"})
		if err != nil {
			t.Fatalf("open transport: %v", err)
		}
		t.Cleanup(func() { _ = tr.Close() })
		return tr
	}
	pub, subT := open(), open()
	const topic, group = "router-event", "router-group"
	newSub := func(consumer string) message.Subscriber {
		sub, err := subT.NewSubscriber(transports.SubscriberConfig{
			Group: group, Consumer: consumer, AckTimeout: WatermillAckTimeout, Concurrency: 1,
		})
		if err != nil {
			t.Fatalf("new subscriber: %v", err)
		}
		if err := sub.(message.SubscribeInitializer).SubscribeInitialize(topic); err != nil {
			t.Fatalf("subscribe initialize: %v", err)
		}
		return sub
	}

	type delivery struct {
		uuid    string
		attempt int
		ctx     context.Context
	}
	got := make(chan delivery, 16)
	release := make(chan struct{})
	handler := func(msg *message.Message) error {
		got <- delivery{msg.UUID, transports.Info(msg).Attempt, msg.Context()}
		switch string(msg.Payload) {
		case "fail-once":
			if transports.Info(msg).Attempt == 1 {
				return errors.New("first attempt fails")
			}
		case "block":
			select {
			case <-msg.Context().Done():
				return msg.Context().Err()
			case <-release:
			}
		}
		return nil
	}
	runRouter := func(sub message.Subscriber) *message.Router {
		r, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
		if err != nil {
			t.Fatal(err)
		}
		r.AddNoPublisherHandler("h", topic, sub, handler)
		go func() { _ = r.Run(ctx) }()
		select {
		case <-r.Running():
		case <-time.After(15 * time.Second):
			t.Fatal("router not running after 15s")
		}
		return r
	}
	next := func(what string) delivery {
		t.Helper()
		select {
		case d := <-got:
			return d
		case <-time.After(15 * time.Second):
			t.Fatalf("%s: no delivery within 15s", what)
			return delivery{}
		}
	}
	ended := func(what string, c context.Context) {
		t.Helper()
		select {
		case <-c.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: message context not cancelled within 10s", what)
		}
	}
	publish := func(payload string) string {
		msg := message.NewMessage(watermill.NewUUID(), []byte(payload))
		if err := pub.Publish(topic, msg); err != nil {
			t.Fatalf("publish: %v", err)
		}
		return msg.UUID
	}

	r := runRouter(newSub("c1"))

	// Ack: the context ends once the handler returned nil.
	okID := publish("ok")
	d := next("ack")
	if d.uuid != okID || d.attempt != 1 {
		t.Fatalf("ack: got %s attempt %d, want %s attempt 1", d.uuid, d.attempt, okID)
	}
	ended("after ack", d.ctx)

	// Nack: the context ends once the handler returned an error, and the
	// message comes back as attempt 2 (after the default redelivery delay).
	failID := publish("fail-once")
	d = next("nack")
	if d.uuid != failID || d.attempt != 1 {
		t.Fatalf("nack: got %s attempt %d, want %s attempt 1", d.uuid, d.attempt, failID)
	}
	ended("after nack", d.ctx)
	d = next("redelivery")
	if d.uuid != failID || d.attempt != 2 {
		t.Fatalf("redelivery: got %s attempt %d, want %s attempt 2", d.uuid, d.attempt, failID)
	}
	ended("after ack of the redelivery", d.ctx)

	// Close: a running handler's context ends, the router closes, and the
	// message (neither acked nor nacked before Close) comes back.
	blockID := publish("block")
	d = next("block")
	if d.uuid != blockID {
		t.Fatalf("block: got %s, want %s (the acked message came back?)", d.uuid, blockID)
	}
	closed := make(chan error, 1)
	go func() { closed <- r.Close() }()
	ended("after router close", d.ctx)
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("router close: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("router close did not return within 15s")
	}

	close(release)
	r = runRouter(newSub("c2"))
	defer func() { _ = r.Close() }()
	d = next("after restart")
	if d.uuid != blockID {
		t.Fatalf("after restart: got %s, want %s", d.uuid, blockID)
	}
	ended("after ack after restart", d.ctx)
	select {
	case d := <-got:
		t.Fatalf("unexpected delivery %s (attempt %d): an acked message came back", d.uuid, d.attempt)
	case <-time.After(100 * time.Millisecond):
	}
}
