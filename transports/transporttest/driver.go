package transporttest

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/driver"
)

// DriverProvider is implemented by a transport built on the delivery
// engine: it hands out its driver, which the driver tier tests directly.
type DriverProvider interface {
	Driver() driver.Driver
}

// RunDriver runs the driver tier of the suite against the transport of h:
// every call of transports/driver without the engine or any middleware,
// ErrClosed, and the capability interfaces the transport implements
// (inspector, tailer, dead-letter list, replay and purge). The transport
// must implement DriverProvider.
func RunDriver(t *testing.T, h Harness) {
	if h.URL == nil {
		t.Fatal("transporttest: Harness.URL is required")
	}
	s := &driverSuite{h: h}
	t.Run("Receive", s.receive)
	t.Run("AckAndNack", s.ackAndNack)
	t.Run("PendingAndRecord", s.pendingAndRecord)
	t.Run("ClaimAndKeepAlive", s.claimAndKeepAlive)
	t.Run("TopicFacts", s.topicFacts)
	t.Run("Closed", s.closed)
	t.Run("Inspector", s.inspector)
	t.Run("Tailer", s.tailer)
	t.Run("DeadLetterStore", s.deadLetterStore)
}

type driverSuite struct{ h Harness }

const driverTopic = "conformance.driver_item"

// open opens the transport of url; it is closed at test end.
func (s *driverSuite) open(t *testing.T, url string) (transports.Transport, driver.Driver) {
	t.Helper()
	tr, err := transports.Open(context.Background(), url, transports.OpenOptions{Service: "svc"})
	if err != nil {
		t.Fatalf("Open(%s): %v", url, err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	dp, ok := tr.(DriverProvider)
	if !ok {
		t.Fatalf("%T does not implement transporttest.DriverProvider", tr)
	}
	return tr, dp.Driver()
}

func (s *driverSuite) sub(t *testing.T, d driver.Driver, topic, group, consumer string, ackTimeout time.Duration) driver.Subscription {
	t.Helper()
	ds, err := d.Open(context.Background(), topic, transports.SubscriberConfig{
		Group: group, Consumer: consumer, AckTimeout: ackTimeout, Concurrency: 4,
	})
	if err != nil {
		t.Fatalf("Open(%s, %s, %s): %v", topic, group, consumer, err)
	}
	t.Cleanup(func() { _ = ds.Close() })
	return ds
}

func publishN(t *testing.T, tr transports.Transport, topic string, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		m := message.NewMessage(newID(), []byte(`{"n":`+itoa(i)+`}`))
		m.Metadata.Set("k", "v")
		if err := tr.Publish(topic, m); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		ids = append(ids, m.UUID)
	}
	return ids
}

// receiveAll receives until it has n messages or within passes.
func (s *driverSuite) receiveAll(t *testing.T, ds driver.Subscription, n int, within time.Duration) []*driver.Message {
	t.Helper()
	var got []*driver.Message
	deadline := time.Now().Add(s.h.scale(within))
	for len(got) < n {
		if time.Now().After(deadline) {
			t.Fatalf("received %d of %d messages within %s", len(got), n, within)
		}
		msgs, err := ds.Receive(context.Background(), n-len(got), 200*time.Millisecond)
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		if len(msgs) > n-len(got) {
			t.Fatalf("Receive(max %d) returned %d messages", n-len(got), len(msgs))
		}
		got = append(got, msgs...)
	}
	return got
}

func uuids(msgs []*driver.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Message.UUID
	}
	slices.Sort(out)
	return out
}

func ackIDs(msgs []*driver.Message) []driver.AckID {
	out := make([]driver.AckID, len(msgs))
	for i, m := range msgs {
		out[i] = m.AckID
	}
	return out
}

func sameIDs(t *testing.T, what string, got []*driver.Message, want []string) {
	t.Helper()
	w := slices.Clone(want)
	slices.Sort(w)
	if g := uuids(got); !slices.Equal(g, w) {
		t.Fatalf("%s: got %v, want %v", what, g, w)
	}
}

// Receive returns what Open's group gets, bounded by max, with the facts
// of a first delivery; it returns nothing after wait, and ctx's error once
// ctx is done.
func (s *driverSuite) receive(t *testing.T) {
	tr, d := s.open(t, s.h.URL(t))
	ds := s.sub(t, d, driverTopic, "g", "c1", time.Minute)
	ids := publishN(t, tr, driverTopic, 5)
	first, err := ds.Receive(context.Background(), 2, s.h.scale(5*time.Second))
	if err != nil || len(first) == 0 || len(first) > 2 {
		t.Fatalf("Receive(max 2) = %d messages, %v; want 1 or 2", len(first), err)
	}
	// Ack as we go: a queue broker sends no more than its prefetch
	// (the subscription's Concurrency) unacknowledged.
	if err := ds.Ack(context.Background(), ackIDs(first)); err != nil {
		t.Fatal(err)
	}
	rest := s.receiveAll(t, ds, 5-len(first), 10*time.Second)
	got := append(first, rest...)
	sameIDs(t, "received", got, ids)
	for _, m := range got {
		if m.Topic != "" && m.Topic != driverTopic {
			t.Errorf("message %s: Topic %q, want %q", m.Message.UUID, m.Topic, driverTopic)
		}
		if m.Attempts != 0 || m.Poison != nil {
			t.Errorf("message %s: Attempts %d Poison %v, want a first delivery (0, nil)", m.Message.UUID, m.Attempts, m.Poison)
		}
		if m.Message.Metadata.Get("k") != "v" || !strings.HasPrefix(string(m.Message.Payload), `{"n":`) {
			t.Errorf("message %s: metadata %v payload %q not kept", m.Message.UUID, m.Message.Metadata, m.Message.Payload)
		}
	}
	if err := ds.Ack(context.Background(), ackIDs(rest)); err != nil {
		t.Fatal(err)
	}
	if msgs, err := ds.Receive(context.Background(), 4, 50*time.Millisecond); err != nil || len(msgs) != 0 {
		t.Fatalf("Receive with nothing to read = %d messages, %v; want none and no error", len(msgs), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	start := time.Now()
	_, err = ds.Receive(ctx, 4, time.Minute)
	if !errors.Is(err, context.Canceled) || time.Since(start) > 30*time.Second {
		t.Fatalf("Receive after ctx was cancelled = %v after %s; want context.Canceled at once", err, time.Since(start))
	}
}

// Ack removes entries for good; Nack returns them with the attempt count
// given, after the delay.
func (s *driverSuite) ackAndNack(t *testing.T) {
	url := s.h.URL(t)
	tr, d := s.open(t, url)
	ackTimeout := s.h.scale(time.Second)
	ds := s.sub(t, d, driverTopic, "g", "c1", ackTimeout)
	ids := publishN(t, tr, driverTopic, 3)
	got := s.receiveAll(t, ds, 3, 10*time.Second)
	var acked, counted, uncounted *driver.Message
	for _, m := range got {
		switch m.Message.UUID {
		case ids[0]:
			acked = m
		case ids[1]:
			counted = m
		default:
			uncounted = m
		}
	}
	if err := ds.Ack(context.Background(), []driver.AckID{acked.AckID}); err != nil {
		t.Fatal(err)
	}
	if err := ds.Nack(context.Background(), []driver.Nack{
		{AckID: counted.AckID, Attempts: 1},
		{AckID: uncounted.AckID, Attempts: 0},
	}); err != nil {
		t.Fatal(err)
	}
	// The nacked entries come back: to this consumer through its own
	// pending list (at once) or a claim, or as new deliveries.
	back := map[string]int{}
	deadline := time.Now().Add(s.h.scale(20 * time.Second))
	for len(back) < 2 && time.Now().Before(deadline) {
		var msgs []*driver.Message
		if ds.Capabilities().PendingList {
			var err error
			if msgs, _, err = ds.Pending(context.Background(), "", 10); err != nil {
				t.Fatal(err)
			}
		} else {
			var err error
			if msgs, err = ds.Receive(context.Background(), 10, 200*time.Millisecond); err != nil {
				t.Fatal(err)
			}
		}
		for _, m := range msgs {
			if m.Message.UUID == ids[0] {
				t.Fatalf("acked message %s delivered again", ids[0])
			}
			back[m.Message.UUID] = m.Attempts
		}
	}
	if back[ids[1]] != 1 || back[ids[2]] != 0 || len(back) != 2 {
		t.Fatalf("nacked messages came back with attempts %v; want %s: 1 and %s: 0", back, ids[1], ids[2])
	}
}

// Own pending entries are read again after a reopen, without counting a
// delivery; Record sets the count the next read reports.
func (s *driverSuite) pendingAndRecord(t *testing.T) {
	url := s.h.URL(t)
	tr, d := s.open(t, url)
	ds := s.sub(t, d, driverTopic, "g", "c1", time.Minute)
	if !ds.Capabilities().PendingList {
		// A queue broker returns unacknowledged deliveries when the
		// consumer goes: they come back as new deliveries, counted.
		ids := publishN(t, tr, driverTopic, 2)
		s.receiveAll(t, ds, 2, 10*time.Second)
		if err := ds.Close(); err != nil {
			t.Fatal(err)
		}
		again := s.receiveAll(t, s.sub(t, d, driverTopic, "g", "c1", time.Minute), 2, 20*time.Second)
		sameIDs(t, "redelivered after the consumer went", again, ids)
		for _, m := range again {
			if m.Attempts < 1 {
				t.Errorf("%s handed out, returned with the consumer: Attempts %d, want >= 1", m.Message.UUID, m.Attempts)
			}
		}
		if msgs, next, err := ds.Pending(context.Background(), "", 10); len(msgs) != 0 || next != "" || (err != nil && !errors.Is(err, transports.ErrClosed)) {
			t.Errorf("Pending without a pending list = %d, %q, %v; want nothing", len(msgs), next, err)
		}
		return
	}
	ids := publishN(t, tr, driverTopic, 3)
	got := s.receiveAll(t, ds, 3, 10*time.Second)
	if err := ds.Record(context.Background(), []driver.Attempt{{AckID: got[0].AckID, Attempts: 5}}); err != nil {
		t.Fatal(err)
	}
	if err := ds.Close(); err != nil {
		t.Fatal(err)
	}
	re := s.sub(t, d, driverTopic, "g", "c1", time.Minute)
	for round := range 2 { // reading pending twice counts nothing
		var all []*driver.Message
		cursor := ""
		for {
			msgs, next, err := re.Pending(context.Background(), cursor, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) > 2 {
				t.Fatalf("Pending(max 2) returned %d", len(msgs))
			}
			all = append(all, msgs...)
			if next == "" {
				break
			}
			cursor = next
		}
		sameIDs(t, "own pending after a reopen", all, ids)
		for _, m := range all {
			want := 1
			if m.Message.UUID == got[0].Message.UUID {
				want = 5
			}
			if m.Attempts != want || m.Recorded {
				t.Errorf("round %d: pending %s Attempts %d Recorded %v; want %d, false", round, m.Message.UUID, m.Attempts, m.Recorded, want)
			}
		}
	}
	if msgs, err := re.Receive(context.Background(), 10, 50*time.Millisecond); err != nil || len(msgs) != 0 {
		t.Fatalf("Receive returned %d pending entries as new (%v)", len(msgs), err)
	}
}

// Claim takes entries other members left idle, without counting; a
// keepalive keeps an entry from being claimed; entries deleted while
// pending are skipped.
func (s *driverSuite) claimAndKeepAlive(t *testing.T) {
	url := s.h.URL(t)
	tr, d := s.open(t, url)
	a := s.sub(t, d, driverTopic, "g", "a", time.Minute)
	if !a.Capabilities().PendingList {
		if msgs, next, err := a.Claim(context.Background(), 0, "", 10); len(msgs) != 0 || next != "" || err != nil {
			t.Errorf("Claim without a pending list = %d, %q, %v; want nothing", len(msgs), next, err)
		}
		if err := a.KeepAlive(context.Background(), nil); err != nil {
			t.Errorf("KeepAlive: %v", err)
		}
		return
	}
	b := s.sub(t, d, driverTopic, "g", "b", time.Minute)
	ids := publishN(t, tr, driverTopic, 2)
	held := s.receiveAll(t, a, 2, 10*time.Second)
	// idle leaves a stalled test up to a second between the KeepAlive
	// and the Claim below before the kept entry is idle again.
	idle := s.h.scale(time.Second)
	time.Sleep(2 * idle) // both entries idle longer than idle
	var kept, left *driver.Message
	for _, m := range held {
		if m.Message.UUID == ids[0] {
			kept = m
		} else {
			left = m
		}
	}
	if err := a.KeepAlive(context.Background(), []driver.AckID{kept.AckID}); err != nil {
		t.Fatal(err)
	}
	msgs, _, err := b.Claim(context.Background(), idle, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	sameIDs(t, "claimed (the kept-alive entry excluded)", msgs, []string{left.Message.UUID})
	if msgs[0].Attempts != 1 || msgs[0].Recorded {
		t.Errorf("claimed entry: Attempts %d Recorded %v, want 1, false (a claim counts nothing)", msgs[0].Attempts, msgs[0].Recorded)
	}
	// a no longer holds it: its keepalive must not take it back.
	if err := a.KeepAlive(context.Background(), []driver.AckID{left.AckID}); err != nil {
		t.Fatal(err)
	}
	own, _, err := a.Pending(context.Background(), "", 10)
	if err != nil {
		t.Fatal(err)
	}
	sameIDs(t, "a's pending after b claimed", own, []string{kept.Message.UUID})
	if err := b.Ack(context.Background(), []driver.AckID{msgs[0].AckID}); err != nil {
		t.Fatal(err)
	}
	if err := a.Ack(context.Background(), []driver.AckID{kept.AckID}); err != nil {
		t.Fatal(err)
	}
	if !s.h.Retention {
		return
	}
	// An entry trimmed from the stream while pending is skipped and
	// acknowledged by the claim, which moves on to the next entry.
	fresh := s.h.URL(t)
	trimURL := fresh + sep(fresh) + "maxlen=10"
	tr2, d2 := s.open(t, trimURL)
	a2 := s.sub(t, d2, driverTopic+"_trim", "g", "a", time.Minute)
	b2 := s.sub(t, d2, driverTopic+"_trim", "g", "b", time.Minute)
	publishN(t, tr2, driverTopic+"_trim", 1)
	gone := s.receiveAll(t, a2, 1, 10*time.Second)
	publishN(t, tr2, driverTopic+"_trim", 500)
	live := s.receiveAll(t, a2, 1, 10*time.Second)
	time.Sleep(2 * idle)
	var claimed []*driver.Message
	cursor := ""
	for {
		msgs, next, err := b2.Claim(context.Background(), idle, cursor, 10)
		if err != nil {
			t.Fatalf("Claim over an entry deleted while pending: %v", err)
		}
		claimed = append(claimed, msgs...)
		if next == "" {
			break
		}
		cursor = next
	}
	for _, m := range claimed {
		if m.Message.UUID == gone[0].Message.UUID {
			t.Fatalf("claimed the entry trimmed while pending")
		}
	}
	if uuids(claimed)[0] != live[0].Message.UUID && !slices.Contains(uuids(claimed), live[0].Message.UUID) {
		t.Fatalf("the claim did not move on past the trimmed entry to %s: got %v", live[0].Message.UUID, uuids(claimed))
	}
}

func newID() string { return uuid.NewString() }

func itoa(i int) string { return strconv.Itoa(i) }

func sep(url string) string {
	if strings.Contains(url, "?") {
		return "&"
	}
	return "?"
}

// Each message reports the topic it was fired as, also when two topics of
// one group share a queue.
func (s *driverSuite) topicFacts(t *testing.T) {
	tr, d := s.open(t, s.h.URL(t))
	x := s.sub(t, d, driverTopic, "g", "c1", time.Minute)
	y := s.sub(t, d, driverTopic+"_other", "g", "c1", time.Minute)
	fired := map[string]string{}
	for _, id := range publishN(t, tr, driverTopic, 5) {
		fired[id] = driverTopic
	}
	for _, id := range publishN(t, tr, driverTopic+"_other", 5) {
		fired[id] = driverTopic + "_other"
	}
	seen := map[string]bool{}
	deadline := time.Now().Add(s.h.scale(20 * time.Second))
	for len(seen) < len(fired) && time.Now().Before(deadline) {
		for _, ds := range []driver.Subscription{x, y} {
			msgs, err := ds.Receive(context.Background(), 10, 50*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				want := fired[m.Message.UUID]
				if m.Topic != want && (m.Topic != "" || (ds == x) != (want == driverTopic)) {
					t.Errorf("message fired as %q reported as %q", want, m.Topic)
				}
				seen[m.Message.UUID] = true
			}
			if err := ds.Ack(context.Background(), ackIDs(msgs)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(seen) != len(fired) {
		t.Fatalf("received %d of %d messages", len(seen), len(fired))
	}
}

// Every call of a closed subscription and Open on a closed transport
// return ErrClosed.
func (s *driverSuite) closed(t *testing.T) {
	tr, d := s.open(t, s.h.URL(t))
	ds := s.sub(t, d, driverTopic, "g", "c1", time.Minute)
	if err := ds.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ds.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := ds.Receive(context.Background(), 1, time.Millisecond); !errors.Is(err, transports.ErrClosed) {
		t.Errorf("Receive after Close = %v, want ErrClosed", err)
	}
	if ds.Capabilities().PendingList {
		if _, _, err := ds.Pending(context.Background(), "", 1); !errors.Is(err, transports.ErrClosed) {
			t.Errorf("Pending after Close = %v, want ErrClosed", err)
		}
		if _, _, err := ds.Claim(context.Background(), 0, "", 1); !errors.Is(err, transports.ErrClosed) {
			t.Errorf("Claim after Close = %v, want ErrClosed", err)
		}
		if err := ds.Ack(context.Background(), nil); !errors.Is(err, transports.ErrClosed) {
			t.Errorf("Ack after Close = %v, want ErrClosed", err)
		}
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Open(context.Background(), driverTopic, transports.SubscriberConfig{Group: "g", Consumer: "c2", AckTimeout: time.Minute, Concurrency: 1}); !errors.Is(err, transports.ErrClosed) {
		t.Errorf("Open on a closed transport = %v, want ErrClosed", err)
	}
	if _, err := tr.NewSubscriber(transports.SubscriberConfig{Group: "g", Consumer: "c2", AckTimeout: time.Minute, Concurrency: 1}); !errors.Is(err, transports.ErrClosed) {
		t.Errorf("NewSubscriber on a closed transport = %v, want ErrClosed", err)
	}
}

// The inspector reports the group with what it holds.
func (s *driverSuite) inspector(t *testing.T) {
	tr, d := s.open(t, s.h.URL(t))
	in, ok := tr.(transports.Inspector)
	if !ok {
		t.Skipf("%T does not implement transports.Inspector", tr)
	}
	ds := s.sub(t, d, driverTopic, "g", "c1", time.Minute)
	publishN(t, tr, driverTopic, 3)
	s.receiveAll(t, ds, 2, 10*time.Second)
	insp, err := in.Inspect(context.Background(), transports.InspectOptions{Groups: []string{"g"}, Events: []string{driverTopic}})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(insp.Groups, func(g transports.GroupInfo) bool { return g.Group == "g" })
	if i < 0 {
		t.Fatalf("Inspect has no group g: %+v", insp)
	}
	if g := insp.Groups[i]; g.Pending != transports.Unknown && g.Pending != 2 {
		t.Errorf("group g: Pending %d, want 2 (or Unknown)", g.Pending)
	}
}

// The tailer follows a topic without joining a group.
func (s *driverSuite) tailer(t *testing.T) {
	tr, d := s.open(t, s.h.URL(t))
	tl, ok := tr.(transports.Tailer)
	if !ok {
		t.Skipf("%T does not implement transports.Tailer", tr)
	}
	ds := s.sub(t, d, driverTopic, "g", "c1", time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), s.h.scale(20*time.Second))
	defer cancel()
	ready := make(chan struct{})
	var ids []string
	errc := make(chan error, 1)
	seen := make(chan string, 10)
	go func() {
		errc <- tl.Tail(ctx, driverTopic, transports.TailOptions{Ready: func() { close(ready) }}, func(ev transports.TailedEvent) error {
			seen <- ev.Message.UUID
			return nil
		})
	}()
	select {
	case <-ready:
	case err := <-errc:
		t.Fatalf("Tail: %v", err)
	}
	ids = publishN(t, tr, driverTopic, 2)
	for range ids {
		select {
		case id := <-seen:
			if !slices.Contains(ids, id) {
				t.Errorf("tailed %s, not fired", id)
			}
		case <-ctx.Done():
			t.Fatal("Tail did not see the events")
		}
	}
	cancel()
	<-errc
	// The group still gets them: Tail took nothing from it.
	sameIDs(t, "the group after a tail", s.receiveAll(t, ds, 2, 10*time.Second), ids)
}

// Dead letters are listed with their facts, replayed to their group as a
// fresh delivery, and purged.
func (s *driverSuite) deadLetterStore(t *testing.T) {
	tr, d := s.open(t, s.h.URL(t))
	dls, ok := tr.(transports.DeadLetterStore)
	if !ok {
		t.Skipf("%T does not implement transports.DeadLetterStore", tr)
	}
	ds := s.sub(t, d, driverTopic, "g", "c1", time.Minute)
	publishN(t, tr, driverTopic, 3)
	got := s.receiveAll(t, ds, 3, 10*time.Second)
	ctx := context.Background()
	for _, m := range got {
		m.Message.SetContext(transports.WithDeliveryInfo(ctx, &transports.DeliveryInfo{Topic: driverTopic, Group: "g", Attempt: 4}))
		if err := dls.DeadLetter(ctx, "g", m.Message, "boom "+m.Message.UUID, 4); err != nil {
			t.Fatal(err)
		}
	}
	if err := ds.Ack(ctx, ackIDs(got)); err != nil {
		t.Fatal(err)
	}
	var list []transports.DeadLetter
	eventually(t, s.h.scale(10*time.Second), "three dead letters", func() bool {
		var err error
		list, err = dls.DeadLetters(ctx, "g", 0)
		return err == nil && len(list) == 3
	})
	for _, dl := range list {
		if dl.Attempts != 4 || dl.Reason != "boom "+dl.Message.UUID || dl.Group != "g" || (dl.Topic != "" && dl.Topic != driverTopic) {
			t.Errorf("dead letter %+v: want attempts 4, reason boom <id>, group g, topic %s", dl, driverTopic)
		}
	}
	if err := dls.ReplayDeadLetter(ctx, "g", list[0].ID); err != nil {
		t.Fatal(err)
	}
	again := s.receiveAll(t, ds, 1, 10*time.Second)
	if again[0].Message.UUID != list[0].Message.UUID || again[0].Attempts != 0 {
		t.Errorf("replayed %s with Attempts %d; want %s as a fresh delivery (0)", again[0].Message.UUID, again[0].Attempts, list[0].Message.UUID)
	}
	if again[0].Topic != "" && again[0].Topic != driverTopic {
		t.Errorf("replayed message reported as fired on %q, want %q", again[0].Topic, driverTopic)
	}
	if err := ds.Ack(ctx, ackIDs(again)); err != nil {
		t.Fatal(err)
	}
	n, err := dls.PurgeDeadLetters(ctx, "g")
	if err != nil || n != 2 {
		t.Fatalf("PurgeDeadLetters = %d, %v; want 2", n, err)
	}
	if list, err := dls.DeadLetters(ctx, "g", 0); err != nil || len(list) != 0 {
		t.Fatalf("after purge: %d dead letters, %v", len(list), err)
	}
}
