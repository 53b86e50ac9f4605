package memory_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/memory"
)

// A closed broker drops the events still scheduled: once their due time
// passes, nothing holds it busy (Idle), and none is listed as waiting.
func TestCloseDropsScheduledEvents(t *testing.T) {
	b := memory.NewBroker(0)
	tr := memory.New(b)
	due := time.Now().Add(20 * time.Millisecond)
	if err := tr.Schedule(context.Background(), "t.closed", due, message.NewMessage("s1", nil)); err != nil {
		t.Fatal(err)
	}
	b.Close()
	for time.Now().Before(due.Add(time.Millisecond)) {
		time.Sleep(time.Millisecond) // until the dropped event would be due
	}
	if !b.Idle() || len(b.Scheduled()) != 0 {
		t.Fatalf("closed broker: Idle %v, Scheduled %+v; want idle and nothing waiting", b.Idle(), b.Scheduled())
	}
	// Nothing is scheduled or moved after Close: the dropped event never
	// reaches its stream, and a new one is refused, also one already due.
	for _, due := range []time.Time{time.Now().Add(time.Hour), time.Now().Add(-time.Second)} {
		if err := tr.Schedule(context.Background(), "t.closed", due, message.NewMessage("s2", nil)); !errors.Is(err, transports.ErrClosed) {
			t.Fatalf("Schedule after Close, due %s: %v; want ErrClosed", due.Format(time.RFC3339Nano), err)
		}
	}
	if n := b.MoveScheduled(time.Now().Add(time.Hour)); n != 0 {
		t.Fatalf("MoveScheduled after Close moved %d", n)
	}
	if msgs := b.Messages("t.closed"); len(msgs) != 0 {
		t.Fatalf("a dropped scheduled event reached its stream: %d messages", len(msgs))
	}
	_ = tr.Close()
}
