package nats

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/driver"
)

func TestInspect(t *testing.T) {
	tr := openTransport(t, testURL(t, "", ""))
	s := openSub(t, tr, "svc-work", time.Minute)
	for range 3 {
		if err := tr.Publish(testEvent, message.NewMessage(watermill.NewUUID(), []byte(`{}`))); err != nil {
			t.Fatal(err)
		}
	}
	m := receive(t, s, 1, 5*time.Second)[0]
	ctx := context.Background()
	dead := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
	if err := tr.DeadLetter(ctx, "svc-gone", dead, "boom", 1); err != nil {
		t.Fatal(err)
	}
	in, err := tr.Inspect(ctx, transports.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Streams) != 1 || in.Streams[0].Event != testEvent || in.Streams[0].Length != 3 || in.Streams[0].Groups != 1 || in.Streams[0].LastEntryAt.IsZero() {
		t.Fatalf("streams = %+v", in.Streams)
	}
	if len(in.Groups) != 2 {
		t.Fatalf("groups = %+v", in.Groups)
	}
	g := in.Groups[1]
	if g.Group != "svc-work" || g.Event != testEvent || g.Pending != 1 || g.Lag != 2 || g.OldestPending < 0 || g.DeadLetters != 0 {
		t.Errorf("group = %+v", g)
	}
	if g := in.Groups[0]; g.Group != "svc-gone" || g.DeadLetters != 1 {
		t.Errorf("dead-letter-only group = %+v", g)
	}
	if err := s.Ack(ctx, []driver.AckID{m.AckID}); err != nil {
		t.Fatal(err)
	}
	in, err = tr.Inspect(ctx, transports.InspectOptions{Groups: []string{"svc-work"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Groups) != 1 || in.Groups[0].Pending != 0 || in.Groups[0].OldestPending != 0 {
		t.Errorf("after the ack: groups = %+v", in.Groups)
	}
}

func TestTail(t *testing.T) {
	tr := openTransport(t, testURL(t, "", ""))
	old := message.NewMessage(watermill.NewUUID(), []byte(`{"n":0}`))
	if err := tr.Publish(testEvent, old); err != nil {
		t.Fatal(err)
	}
	for _, since := range []transports.Since{{}, transports.SinceBeginning} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		fresh := message.NewMessage(watermill.NewUUID(), []byte(`{"n":1}`))
		var got []string
		stop := errors.New("stop")
		err := tr.Tail(ctx, testEvent, transports.TailOptions{Since: since, Ready: func() {
			go func() { _ = tr.Publish(testEvent, fresh) }()
		}}, func(ev transports.TailedEvent) error {
			if ev.Err != nil || ev.Position == "" || ev.At.IsZero() {
				t.Errorf("tailed %+v", ev)
			}
			got = append(got, ev.Message.UUID)
			if ev.Message.UUID == fresh.UUID {
				return stop
			}
			return nil
		})
		cancel()
		if !errors.Is(err, stop) {
			t.Fatalf("Tail: %v", err)
		}
		if since.IsBeginning() && (len(got) < 2 || got[0] != old.UUID) {
			t.Errorf("since beginning: %v", got)
		}
		if since.IsNew() && len(got) != 1 {
			t.Errorf("since new: %v, want only the event fired after Ready", got)
		}
	}
}

// A tail of an event never fired creates nothing (a typo would otherwise
// leave a stream for good): it waits for the stream, and reads the first
// event fired once it is made.
func TestTailOfAnEventNeverFiredCreatesNothing(t *testing.T) {
	tr := openTransport(t, testURL(t, "", ""))
	const event = "tail.never_fired"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	first := message.NewMessage(watermill.NewUUID(), []byte(`{"n":1}`))
	stop := errors.New("stop")
	err := tr.Tail(ctx, event, transports.TailOptions{Ready: func() {
		if _, err := tr.js.Stream(ctx, tr.opts.StreamName(event)); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("the stream of %s after the tail began: %v, want none", event, err)
		}
		go func() { _ = tr.Publish(event, first) }()
	}}, func(ev transports.TailedEvent) error {
		if ev.Message.UUID != first.UUID {
			t.Errorf("tailed %s, want the first event %s", ev.Message.UUID, first.UUID)
		}
		return stop
	})
	if !errors.Is(err, stop) {
		t.Fatalf("Tail: %v", err)
	}
}
