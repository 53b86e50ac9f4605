package amqp

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/transports"
)

// A quorum queue cannot be deleted "if unused": a group with no consumer
// left is removed without --force all the same, and a group with one is
// refused.
func TestRemoveGroupOfQuorumQueues(t *testing.T) {
	raw := testURL(t, "", "queue_type=quorum")
	b := newTestBus(t, raw, "svc", "p1")
	ev := bus.NewEvent[int]("remove", "quorum")
	for _, l := range []string{"old", "older"} {
		if err := bus.Listen(b, ev, l, func(context.Context, bus.Delivery[int]) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	startBus(t, b)
	tr := openForTest(t, raw)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tr.RemoveGroup(ctx, "svc-old", transports.RemoveGroupOptions{}); !errors.Is(err, transports.ErrGroupInUse) {
		t.Fatalf("RemoveGroup while read: %v, want ErrGroupInUse", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tr.RemoveGroup(ctx, "svc-old", transports.RemoveGroupOptions{}); err != nil {
		t.Fatalf("RemoveGroup once stopped: %v", err)
	}
	// Through a URL that does not say the queues are quorum queues.
	classic := openForTest(t, strings.Replace(raw, "&queue_type=quorum", "", 1))
	if classic.o.QueueType == QueueQuorum {
		t.Fatal("the classic URL still says quorum")
	}
	if err := classic.RemoveGroup(ctx, "svc-older", transports.RemoveGroupOptions{}); err != nil {
		t.Fatalf("RemoveGroup of a quorum queue through a classic URL: %v", err)
	}
	for _, g := range []string{"svc-old", "svc-older"} {
		if n := queueLen(t, tr.tp.groupQueue(g)); n != -1 {
			t.Fatalf("the queue of %s is still there (%d messages)", g, n)
		}
	}
}
