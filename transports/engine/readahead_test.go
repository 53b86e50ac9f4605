package engine_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/driver"
	"github.com/busline/busline/transports/engine"
)

// aheadDriver is a fakeDriver that reads ahead: its first ReceiveAhead
// returns free+ahead entries, those beyond free uncounted, as a driver
// must (driver.AheadReceiver).
type aheadDriver struct {
	*fakeDriver
	readAhead int
	firstRead int // entries the first read returns (0: free + ahead)

	amu     sync.Mutex
	asked   [][2]int // free, ahead of each ReceiveAhead
	records []driver.Attempt
}

func (a *aheadDriver) Open(context.Context, string, transports.SubscriberConfig) (driver.Subscription, error) {
	return a, nil
}

func (a *aheadDriver) Capabilities() driver.Capabilities {
	c := a.fakeDriver.Capabilities()
	c.ReadAhead = a.readAhead
	return c
}

func (a *aheadDriver) ReceiveAhead(ctx context.Context, free, ahead int, wait time.Duration) ([]*driver.Message, error) {
	a.amu.Lock()
	first := len(a.asked) == 0
	a.asked = append(a.asked, [2]int{free, ahead})
	a.amu.Unlock()
	if !first {
		return a.Receive(ctx, free, wait)
	}
	n := free + ahead
	if a.firstRead > 0 {
		n = a.firstRead
	}
	var out []*driver.Message
	for i := range n {
		id := fmt.Sprintf("m%d", i)
		out = append(out, &driver.Message{AckID: id, Topic: "t", Message: message.NewMessage(id, nil), Recorded: i < free})
	}
	return out, nil
}

func (a *aheadDriver) Record(_ context.Context, at []driver.Attempt) error {
	a.amu.Lock()
	defer a.amu.Unlock()
	a.records = append(a.records, at...)
	return nil
}

func (a *aheadDriver) recorded() []driver.Attempt {
	a.amu.Lock()
	defer a.amu.Unlock()
	return slices.Clone(a.records)
}

// A driver that reads ahead is asked for its free slots and ReadAhead
// more; at most Concurrency messages are out at once, each entry read
// ahead is recorded as attempt 1 when it is handed out (the read left it
// uncounted), and Close gives back the entries still queued with their
// count unchanged.
func TestReadAhead(t *testing.T) {
	f := &aheadDriver{fakeDriver: &fakeDriver{}, readAhead: 4}
	sub, err := engine.New(f, transports.SubscriberConfig{Group: "g", Consumer: "c", AckTimeout: time.Minute, Concurrency: 2}, engine.Options{ReceiveWait: 10 * time.Millisecond, ReadAheadHorizon: -1})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := sub.Subscribe(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	m0, m1 := next(t, ch), next(t, ch)
	f.amu.Lock()
	asked := f.asked[0]
	f.amu.Unlock()
	// The slots waiting when the read starts (one or both) are free.
	if free := asked[0]; free < 1 || free > 2 || free+asked[1] != 6 {
		t.Fatalf("first read asked for %d free and %d ahead, want 1 or 2 free of 6 (Concurrency 2 + ReadAhead 4)", asked[0], asked[1])
	}
	select {
	case m := <-ch:
		t.Fatalf("%s handed out while Concurrency (2) messages were out", m.UUID)
	case <-time.After(50 * time.Millisecond):
	}
	m0.Ack()
	m2 := next(t, ch)
	if m2.UUID != "m2" || transports.Info(m2).Attempt != 1 {
		t.Fatalf("after an ack, handed out %s attempt %d; want m2, attempt 1", m2.UUID, transports.Info(m2).Attempt)
	}
	// Entries read ahead (beyond the free ones) are recorded as attempt
	// 1 when handed out; the counted ones are not recorded.
	var want []driver.Attempt
	for _, m := range []*message.Message{m0, m1, m2} {
		var i int
		if _, err := fmt.Sscanf(m.UUID, "m%d", &i); err != nil {
			t.Fatal(err)
		}
		if i >= asked[0] {
			want = append(want, driver.Attempt{AckID: m.UUID, Attempts: 1})
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(f.recorded()) < len(want) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	r := f.recorded()
	byID := func(a, b driver.Attempt) int { return strings.Compare(a.AckID.(string), b.AckID.(string)) }
	slices.SortFunc(r, byID)
	slices.SortFunc(want, byID)
	if !slices.Equal(r, want) {
		t.Fatalf("records %+v, want %+v (the entries read ahead, uncounted, that were handed out)", r, want)
	}
	m1.Ack()
	m2.Ack()
	out := next(t, ch) // m3 or m4: two slots hand them out
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var back []string
	for _, n := range f.nacks {
		if n.Attempts != 0 {
			t.Errorf("queued entry %v given back with %d attempts, want 0 (never handed out)", n.AckID, n.Attempts)
		}
		back = append(back, n.AckID.(string))
	}
	if !slices.Contains(back, "m5") || slices.Contains(back, out.UUID) {
		t.Errorf("given back %v at Close; want the entries still queued (m5 among them), not %s (handed out)", back, out.UUID)
	}
}

// A slot blocked handing its entry out (nobody reads the channel yet) is
// not free: a read made while two of three slots are so blocked counts
// one entry, for the one slot that waits, and asks for the rest ahead,
// uncounted. A slot that takes a queued entry is never counted as
// waiting for one (this failed about once in 60 runs when the engine
// counted slots in next() and subtracted the queue's length).
func TestReadAheadCountsOnlyWaitingSlots(t *testing.T) {
	// The reader reads again every ReceiveWait while nothing comes: every
	// read after the first must ask the same.
	asked := readWhileTwoSlotsSend(t)
	for _, a := range asked {
		if a != [2]int{1, 3} {
			t.Fatalf("reads after the queue drained asked for %v (free, ahead); want [1 3] each: 1 free (one slot waits, two are blocked sending) and 3 ahead", asked)
		}
	}
}

// readWhileTwoSlotsSend returns what the reads after the first asked for
// (free, ahead), once there was at least one.
func readWhileTwoSlotsSend(t *testing.T) [][2]int {
	t.Helper()
	// Six entries whatever the first read asked: it may come before all
	// three slots wait (the slots start concurrently), and then asks for
	// fewer.
	f := &aheadDriver{fakeDriver: &fakeDriver{}, readAhead: 3, firstRead: 6}
	sub, err := engine.New(f, transports.SubscriberConfig{Group: "g", Consumer: "c", AckTimeout: time.Minute, Concurrency: 3}, engine.Options{ReceiveWait: 10 * time.Millisecond, ReadAheadHorizon: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ch, err := sub.Subscribe(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	// The first read brings six entries: three slots take one each and
	// block sending it, three wait queued. Each ack frees a slot, which
	// takes the next queued entry; the fourth finds the queue empty and
	// reads while the other two are blocked sending.
	for range 4 {
		next(t, ch).Ack()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.amu.Lock()
		asked := slices.Clone(f.asked)
		f.amu.Unlock()
		if len(asked) >= 2 {
			return asked[1:]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no second read: %v", asked)
		}
		time.Sleep(time.Millisecond)
	}
}
