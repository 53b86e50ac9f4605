package nats

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
)

// The dead-letter commands take group names from users: a name no
// consumer group can have ('*' and '>' would be subject wildcards that
// match every group's dead letters) is not found, and nothing is listed,
// replayed or purged under it.
func TestDeadLettersOfAnImpossibleGroup(t *testing.T) {
	tr := openTransport(t, testURL(t, "", ""))
	ctx := context.Background()
	for _, g := range []string{"*", ">", "a.*", "a b", ""} {
		if list, err := tr.DeadLetters(ctx, g, 0); !errors.Is(err, transports.ErrNotFound) || len(list) != 0 {
			t.Errorf("DeadLetters(%q) = %d, %v; want none, ErrNotFound", g, len(list), err)
		}
		if err := tr.ReplayDeadLetter(ctx, g, "1"); !errors.Is(err, transports.ErrNotFound) {
			t.Errorf("ReplayDeadLetter(%q): %v; want ErrNotFound", g, err)
		}
		if n, err := tr.PurgeDeadLetters(ctx, g); !errors.Is(err, transports.ErrNotFound) || n != 0 {
			t.Errorf("PurgeDeadLetters(%q) = %d, %v; want 0, ErrNotFound", g, n, err)
		}
	}
}

// A copy replayed from the dead letters carries its group to a tail
// (transports.MetaReplayGroup), so that busline tail shows it as a replay.
func TestTailShowsReplays(t *testing.T) {
	tr := openTransport(t, testURL(t, "", ""))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The event's stream exists before the tail starts.
	if err := tr.Publish(testEvent, message.NewMessage(watermill.NewUUID(), []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	// The group still reads the event (a replay to a group that does not
	// is refused).
	openSub(t, tr, "svc-replayed", time.Minute)
	msg := message.NewMessage(watermill.NewUUID(), []byte(`{"n":1}`))
	msg.Metadata.Set("ce-type", testEvent)
	if err := tr.DeadLetter(ctx, "svc-replayed", msg, "failed", 3); err != nil {
		t.Fatal(err)
	}
	list, err := tr.DeadLetters(ctx, "svc-replayed", 0)
	if err != nil || len(list) != 1 {
		t.Fatalf("DeadLetters = %d, %v", len(list), err)
	}
	stop := errors.New("stop")
	replayed := make(chan error, 1)
	defer func() {
		select {
		case err := <-replayed:
			if err != nil {
				t.Error(err)
			}
		case <-ctx.Done(): // the tail failed before it was ready
		}
	}()
	err = tr.Tail(ctx, testEvent, transports.TailOptions{Ready: func() {
		go func() { replayed <- tr.ReplayDeadLetter(ctx, "svc-replayed", list[0].ID) }()
	}}, func(ev transports.TailedEvent) error {
		if ev.Message.UUID != msg.UUID {
			return nil
		}
		if g := ev.Message.Metadata.Get(transports.MetaReplayGroup); g != "svc-replayed" {
			t.Errorf("tailed replay has %s %q, want svc-replayed", transports.MetaReplayGroup, g)
		}
		return stop
	})
	if !errors.Is(err, stop) {
		t.Fatalf("Tail: %v", err)
	}
}

// A message without an event ID (written by another client) is poison
// with the same ID in every group, so that its dead letters can be
// matched up.
func TestPoisonWithoutIDHasOneIDInEveryGroup(t *testing.T) {
	tr := openTransport(t, testURL(t, "", ""))
	a := openSub(t, tr, "svc-a", time.Minute)
	b := openSub(t, tr, "svc-b", time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := tr.js.Publish(ctx, tr.opts.Subject(testEvent), []byte(`{"raw":true}`)); err != nil {
		t.Fatal(err)
	}
	ma, mb := receive(t, a, 1, 10*time.Second), receive(t, b, 1, 10*time.Second)
	if len(ma) != 1 || len(mb) != 1 {
		t.Fatalf("received %d and %d, want one each", len(ma), len(mb))
	}
	if ma[0].Poison == nil || mb[0].Poison == nil {
		t.Fatalf("not poison: %v, %v", ma[0].Poison, mb[0].Poison)
	}
	if ma[0].Message.UUID != mb[0].Message.UUID || ma[0].Message.UUID == "" {
		t.Fatalf("IDs %q and %q, want one ID in both groups", ma[0].Message.UUID, mb[0].Message.UUID)
	}
}
