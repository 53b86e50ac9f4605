package engine_test

import (
	"context"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/driver"
	"github.com/busline/busline/transports/engine"
)

// raceDriver is a pending-list driver scripted for the race of an ack and
// a re-read of the pending list: its reads hand out x and y, then break;
// the re-read of own pending that follows blocks until the test lets it
// return a snapshot taken before x's ack, holding x; the next read returns z.
type raceDriver struct {
	fakeDriver
	x, y, z *driver.Message

	pendingStarted chan struct{} // closed when the blocking re-read started
	release        chan struct{} // closed by the test: the re-read returns
	acked          chan driver.AckID

	mu       sync.Mutex
	receives int
	broken   bool // the read broke: the next own-pending read blocks
	blocked  bool // the blocking re-read was made
}

func (d *raceDriver) Open(context.Context, string, transports.SubscriberConfig) (driver.Subscription, error) {
	return d, nil
}

func (d *raceDriver) Receive(ctx context.Context, n int, wait time.Duration) ([]*driver.Message, error) {
	d.mu.Lock()
	d.receives++
	r := d.receives
	if r == 2 {
		d.broken = true
	}
	d.mu.Unlock()
	switch r {
	case 1:
		return []*driver.Message{d.x, d.y}, nil
	case 2:
		return nil, errBroken
	case 3:
		return []*driver.Message{d.z}, nil
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(wait):
		return nil, nil
	}
}

func (d *raceDriver) Pending(ctx context.Context, _ string, _ int) ([]*driver.Message, string, error) {
	d.mu.Lock()
	block := d.broken && !d.blocked
	d.blocked = d.blocked || block
	d.mu.Unlock()
	if !block {
		return nil, "", nil
	}
	close(d.pendingStarted)
	select {
	case <-d.release:
	case <-ctx.Done():
		return nil, "", ctx.Err()
	}
	// The snapshot was taken before x's ack reached the broker.
	return []*driver.Message{{AckID: d.x.AckID, Topic: "t", Message: message.NewMessage(d.x.Message.UUID, nil), Attempts: 1}}, "", nil
}

func (d *raceDriver) Ack(ctx context.Context, ids []driver.AckID) error {
	_ = d.fakeDriver.Ack(ctx, ids)
	for _, id := range ids {
		d.acked <- id
	}
	return nil
}

var errBroken = &brokenError{}

type brokenError struct{}

func (*brokenError) Error() string { return "connection reset" }

// An entry acknowledged while a re-read of the pending list was on its way
// is not handed out again, though the read's snapshot, taken before the
// ack, returns it (commit 7f1c3d0). The re-read (after a broken read)
// blocks until x's ack has completed, the engine's bookkeeping of it
// included: y's ack is sent by the settler after x's, one flush later,
// or by y's slot when the driver settles inline.
func TestAckDuringPendingReRead(t *testing.T) {
	t.Run("settler", func(t *testing.T) { ackDuringPendingReRead(t, false) })
	t.Run("inline", func(t *testing.T) { ackDuringPendingReRead(t, true) })
}

func ackDuringPendingReRead(t *testing.T, inline bool) {
	d := &raceDriver{
		fakeDriver:     fakeDriver{inline: inline},
		x:              &driver.Message{AckID: "x", Topic: "t", Message: message.NewMessage("x", nil), Recorded: true},
		y:              &driver.Message{AckID: "y", Topic: "t", Message: message.NewMessage("y", nil), Recorded: true},
		z:              &driver.Message{AckID: "z", Topic: "t", Message: message.NewMessage("z", nil), Recorded: true},
		pendingStarted: make(chan struct{}),
		release:        make(chan struct{}),
		acked:          make(chan driver.AckID, 8),
	}
	sub, err := engine.New(d, transports.SubscriberConfig{Group: "g", Consumer: "c", AckTimeout: time.Minute, Concurrency: 3}, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := sub.Subscribe(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*message.Message{}
	for range 2 {
		m := next(t, ch)
		got[m.UUID] = m
	}
	if got["x"] == nil || got["y"] == nil {
		t.Fatalf("handed out %v, want x and y", slices.Sorted(maps.Keys(got)))
	}
	<-d.pendingStarted // the re-read is on its way, x still out
	got["x"].Ack()
	if id := <-d.acked; id != "x" {
		t.Fatalf("acked %v first, want x", id)
	}
	// x's batch was taken before y is acked: y goes in a later flush, made
	// once the settler finished with x's.
	got["y"].Ack()
	if id := <-d.acked; id != "y" {
		t.Fatalf("acked %v second, want y", id)
	}
	close(d.release)
	if m := next(t, ch); m.UUID != "z" {
		t.Fatalf("handed out %s after the re-read, want z (x was acked)", m.UUID)
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	for m := range ch {
		t.Errorf("handed out %s after z", m.UUID)
	}
	d.fakeDriver.mu.Lock()
	defer d.fakeDriver.mu.Unlock()
	for _, n := range d.nacks {
		if n.AckID == "x" {
			t.Errorf("x, acked, was read again and returned to the broker: %+v", n)
		}
	}
}
