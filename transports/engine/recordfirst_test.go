package engine_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/driver"
	"github.com/busline/busline/transports/engine"
)

// pendingDriver's own pending list holds one entry delivered once
// before (a process restarted after its handler crashed). Record reports
// each call on called and returns only when the test lets it (release).
type pendingDriver struct {
	*fakeDriver
	once    sync.Once
	called  chan driver.Attempt
	release chan struct{}
}

func (p *pendingDriver) Open(context.Context, string, transports.SubscriberConfig) (driver.Subscription, error) {
	return p, nil
}

func (p *pendingDriver) Pending(context.Context, string, int) ([]*driver.Message, string, error) {
	var out []*driver.Message
	p.once.Do(func() {
		out = []*driver.Message{{AckID: "e1", Message: message.NewMessage("e1", nil), Attempts: 1}}
	})
	return out, "", nil
}

func (p *pendingDriver) Record(ctx context.Context, a []driver.Attempt) error {
	for _, x := range a {
		p.called <- x
	}
	select {
	case <-p.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// An entry delivered before (re-read from the pending list, or redelivered
// after a failure) has its attempt recorded before the handler gets it: a
// handler that kills its process would otherwise die before the batched
// record each time, and the count would never reach MaxDeliveries.
func TestAttemptOfARedeliveryIsRecordedBeforeTheHandler(t *testing.T) {
	p := &pendingDriver{fakeDriver: &fakeDriver{}, called: make(chan driver.Attempt, 4), release: make(chan struct{}, 4)}
	sub, err := engine.New(p, transports.SubscriberConfig{Group: "g", Consumer: "c", AckTimeout: time.Minute, Concurrency: 1}, engine.Options{ReceiveWait: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ch, err := sub.Subscribe(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	// The record is made, and must complete, before the hand-out.
	recordedBefore := func(attempt int) *message.Message {
		t.Helper()
		select {
		case m := <-ch:
			t.Fatalf("%s handed out as attempt %d before its attempt was recorded", m.UUID, transports.Info(m).Attempt)
		case a := <-p.called:
			if a != (driver.Attempt{AckID: "e1", Attempts: attempt}) {
				t.Fatalf("recorded %+v, want e1 attempt %d", a, attempt)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("nothing recorded or handed out")
		}
		p.release <- struct{}{}
		m := next(t, ch)
		if got := transports.Info(m).Attempt; got != attempt {
			t.Fatalf("handed out as attempt %d, want %d", got, attempt)
		}
		return m
	}
	m := recordedBefore(2) // re-read from the pending list
	transports.Info(m).RetryAfter = time.Millisecond
	m.Nack()
	recordedBefore(3).Ack() // redelivered by the engine after a failure
}

// countDriver's Record and Nack set an entry's count, as Redis's XCLAIM
// RETRYCOUNT does; its first Record call fails.
type countDriver struct {
	*fakeDriver
	mu     sync.Mutex
	once   sync.Once
	failed bool
	log    []string
}

func (d *countDriver) Open(context.Context, string, transports.SubscriberConfig) (driver.Subscription, error) {
	return d, nil
}

func (d *countDriver) Receive(ctx context.Context, n int, wait time.Duration) ([]*driver.Message, error) {
	var out []*driver.Message
	d.once.Do(func() { // read ahead: uncounted, recorded when handed out
		out = []*driver.Message{{AckID: "a", Message: message.NewMessage("a", nil)}}
	})
	if out != nil {
		return out, nil
	}
	return d.fakeDriver.Receive(ctx, n, wait)
}

func (d *countDriver) Record(_ context.Context, as []driver.Attempt) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.failed {
		d.failed = true
		return errors.New("broker blip")
	}
	for _, a := range as {
		d.log = append(d.log, fmt.Sprintf("record %d", a.Attempts))
	}
	return nil
}

// A batched record that failed, retried after the record made before a
// later hand-out, would set the count back below the attempt in the
// handler: the record made first drops it.
func TestStaleRecordNeverFollowsARecordMadeFirst(t *testing.T) {
	d := &countDriver{fakeDriver: &fakeDriver{}}
	sub, err := engine.New(d, transports.SubscriberConfig{Group: "g", Consumer: "c", AckTimeout: time.Minute, Concurrency: 1}, engine.Options{ReceiveWait: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := sub.Subscribe(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	m := next(t, ch) // attempt 1, its batched record fails
	transports.Info(m).RetryAfter = time.Millisecond
	m.Nack()
	m2 := next(t, ch) // attempt 2, recorded before the hand-out
	m2.Ack()
	if err := sub.Close(); err != nil { // flushes what is left
		t.Fatal(err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if i := slices.Index(d.log, "record 2"); i < 0 || slices.Contains(d.log[i:], "record 1") {
		t.Fatalf("records %v: want attempt 2 recorded and no record of attempt 1 after it", d.log)
	}
}

// A re-read entry that a caller slot refuses (admit false) goes back
// uncounted: its attempt is not recorded before the refusal, or the
// broker would count a delivery no handler got.
func TestRefusedHandOutRecordsNoAttempt(t *testing.T) {
	p := &pendingDriver{fakeDriver: &fakeDriver{}, called: make(chan driver.Attempt, 4), release: make(chan struct{}, 4)}
	sub, err := engine.New(p, transports.SubscriberConfig{Group: "g", Consumer: "c", AckTimeout: time.Minute, Concurrency: 1}, engine.Options{ReceiveWait: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	slots, err := sub.SubscribeSlots(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	asked := make(chan struct{}, 1)
	next := make(chan *message.Message, 1)
	go func() {
		next <- slots[0].Next(func() bool { asked <- struct{}{}; return false })
	}()
	select {
	case a := <-p.called:
		p.release <- struct{}{}
		t.Fatalf("attempt %+v recorded for a hand-out the caller refused", a)
	case m := <-next:
		if m != nil {
			t.Fatalf("Next handed out %s though admit refused it", m.UUID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Next neither returned nor recorded")
	}
	select {
	case <-asked:
	default:
		t.Fatal("Next returned before asking admit: the refusal was not tested")
	}
	// It went back to the broker with its count as read (1), so its next
	// delivery is attempt 2, not 3.
	if err := sub.Close(); err != nil { // flushes the settlements
		t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !slices.Contains(p.nacks, driver.Nack{AckID: "e1", Attempts: 1}) {
		t.Fatalf("settlements after the refusal: nacks %+v; want e1 given back with attempts 1", p.nacks)
	}
}
