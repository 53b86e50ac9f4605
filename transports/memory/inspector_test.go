package memory_test

import (
	"context"
	"testing"
	"time"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/memory"
)

// A consumer with an open subscription is a live member of its group; it
// stays a member, not live, once its subscription closes.
func TestInspectMarksOpenConsumersLive(t *testing.T) {
	tr := memory.New(memory.NewBroker(100))
	defer tr.Close()
	sub, err := tr.NewSubscriber(transports.SubscriberConfig{Group: "g", Consumer: "c1", AckTimeout: time.Minute, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Subscribe(context.Background(), "t"); err != nil {
		t.Fatal(err)
	}
	live := func() []bool {
		res, err := tr.Inspect(context.Background(), transports.InspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var out []bool
		for _, g := range res.Groups {
			for _, m := range g.Members {
				out = append(out, m.Live)
			}
		}
		return out
	}
	if got := live(); len(got) != 1 || !got[0] {
		t.Fatalf("members' Live with c1 subscribed: %v; want [true]", got)
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if got := live(); len(got) != 1 || got[0] {
		t.Fatalf("members' Live after c1 closed: %v; want [false]", got)
	}
}
