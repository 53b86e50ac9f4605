package nats

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/busline/busline/transports"
)

const otherEvent = "test_other.happened"

// streamMsgs returns the messages of the stream of event, by event ID
// (every copy).
func streamMsgs(t testing.TB, tr *Transport, event string) map[string][]jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := map[string][]jetstream.Msg{}
	s, err := tr.js.Stream(ctx, tr.opts.StreamName(event))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return out
	}
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		t.Fatal(err)
	}
	for {
		batch, err := c.FetchNoWait(1000)
		if err != nil {
			t.Fatal(err)
		}
		n, more := 0, false
		for m := range batch.Messages() {
			n++
			id := m.Headers().Get(HeaderUUID)
			out[id] = append(out[id], m)
			md, _ := m.Metadata()
			more = md.NumPending > 0
		}
		if n == 0 || !more {
			return out
		}
	}
}

// waitFor polls cond until it holds or 20 s passed.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scheduleMsgs returns the subjects of the schedule stream holding a
// message (the lease apart).
func scheduleMsgs(t testing.TB, tr *Transport) map[string]uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := tr.js.Stream(ctx, tr.opts.ScheduleStream())
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(tr.opts.scheduleRoot()+">"))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects
}

func newMsg(payload string) *message.Message {
	m := message.NewMessage(watermill.NewUUID(), []byte(payload))
	m.Metadata.Set("ce-type", testEvent)
	return m
}

// The moved event is what Publish would have stored: the event ID in both
// ID headers, the metadata, the payload, none of the schedule's headers;
// the schedule stream is left empty.
func TestScheduleMovedLayout(t *testing.T) {
	tr := openTransport(t, testURL(t, "", ""))
	m := newMsg(`{"n":1}`)
	m.Metadata.Set("traceparent", "00-abc-def-01")
	due := time.Now().Add(200 * time.Millisecond)
	if err := tr.Schedule(context.Background(), testEvent, due, m); err != nil {
		t.Fatal(err)
	}
	var got []jetstream.Msg
	waitFor(t, "the moved event", func() bool { got = streamMsgs(t, tr, testEvent)[m.UUID]; return len(got) > 0 })
	if len(got) != 1 {
		t.Fatalf("%d copies in the event stream", len(got))
	}
	h := got[0].Headers()
	if h.Get(natsgo.MsgIdHdr) != m.UUID || h.Get("ce-type") != testEvent || h.Get("traceparent") != "00-abc-def-01" || string(got[0].Data()) != `{"n":1}` {
		t.Fatalf("moved message: headers %v, body %q", h, got[0].Data())
	}
	for k := range h {
		if len(k) > 13 && k[:13] == "busline-sched" {
			t.Errorf("moved message carries schedule header %s", k)
		}
	}
	if md, _ := got[0].Metadata(); md.Timestamp.Before(due.Truncate(time.Millisecond)) {
		t.Errorf("stored at %s, before its due time %s", md.Timestamp, due)
	}
	waitFor(t, "the schedule stream to be empty", func() bool { return len(scheduleMsgs(t, tr)) == 0 })
}

// Scheduling the same event ID again replaces the earlier copy: on the
// same event at once, on another event once the mover read the later one.
func TestScheduleReplace(t *testing.T) {
	tr := openTransport(t, testURL(t, "", ""))
	ctx := context.Background()
	id := watermill.NewUUID()
	first := message.NewMessage(id, []byte("first"))
	second := message.NewMessage(id, []byte("second"))
	if err := tr.Schedule(ctx, testEvent, time.Now().Add(time.Hour), first); err != nil {
		t.Fatal(err)
	}
	if err := tr.Schedule(ctx, testEvent, time.Now().Add(300*time.Millisecond), second); err != nil {
		t.Fatal(err)
	}
	list, err := tr.Scheduled(ctx)
	if err != nil || len(list) != 1 || list[0].Count != 1 {
		t.Fatalf("Scheduled after a replace: %+v, %v", list, err)
	}
	var got []jetstream.Msg
	waitFor(t, "the replacing copy", func() bool { got = streamMsgs(t, tr, testEvent)[id]; return len(got) > 0 })
	if len(got) != 1 || string(got[0].Data()) != "second" {
		t.Fatalf("event stream holds %d copies, first %q", len(got), got[0].Data())
	}

	// Another event: the later copy wins; the earlier one is cancelled.
	id2 := watermill.NewUUID()
	if err := tr.Schedule(ctx, testEvent, time.Now().Add(time.Hour), message.NewMessage(id2, []byte("a"))); err != nil {
		t.Fatal(err)
	}
	if err := tr.Schedule(ctx, otherEvent, time.Now().Add(300*time.Millisecond), message.NewMessage(id2, []byte("b"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the copy on the other event", func() bool { return len(streamMsgs(t, tr, otherEvent)[id2]) == 1 })
	waitFor(t, "the earlier copy to be cancelled", func() bool {
		list, err := tr.Scheduled(ctx)
		return err == nil && len(list) == 0
	})
	if err := tr.CancelScheduled(ctx, id2); !errors.Is(err, transports.ErrNotScheduled) {
		t.Fatalf("cancel after the move: %v", err)
	}
}

// transports.OpenOptions.NoScheduleMover (what the CLI opens with) is
// the URL's no_schedule_mover=true.
func TestOpenOptionsNoScheduleMover(t *testing.T) {
	raw := testURL(t, "", "")
	tr, err := transports.Open(context.Background(), raw, transports.OpenOptions{Service: "test", NoScheduleMover: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if !tr.(*Transport).Options().NoScheduleMover {
		t.Fatal("OpenOptions.NoScheduleMover not honoured")
	}
}

// A transport with no_schedule_mover=true schedules but never moves; a
// transport with a mover on the same prefix moves its events.
func TestScheduleNoMover(t *testing.T) {
	raw := testURL(t, "", "")
	quiet := openTransport(t, raw+"&no_schedule_mover=true")
	if !quiet.Options().NoScheduleMover {
		t.Fatal("no_schedule_mover=true not parsed")
	}
	ctx := context.Background()
	m := newMsg("x")
	if err := quiet.Schedule(ctx, testEvent, time.Now().Add(20*time.Millisecond), m); err != nil {
		t.Fatal(err)
	}
	// Past due and still waiting: nobody moves it.
	waitFor(t, "the due time to pass", func() bool {
		list, err := quiet.Scheduled(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(list) == 1 && time.Now().After(list[0].NextDue.Add(300*time.Millisecond))
	})
	if n := len(streamMsgs(t, quiet, testEvent)); n != 0 {
		t.Fatalf("a transport without a mover moved %d events", n)
	}
	openTransport(t, raw)
	waitFor(t, "a transport with a mover to move it", func() bool { return len(streamMsgs(t, quiet, testEvent)[m.UUID]) == 1 })
}

// A mover that died after claiming an event (its marker is on the
// event's subject) and before deleting the marker: the next mover
// publishes the event — once, whether or not the dead one had — and
// deletes the marker.
func TestScheduleDeadMoversMarker(t *testing.T) {
	raw := testURL(t, "", "")
	quiet := openTransport(t, raw+"&no_schedule_mover=true")
	ctx := context.Background()
	// A mover claims events shortly before they are due: the markers of
	// one that died are finished at their due time, not before.
	due := time.Now().Add(time.Second)
	var movedID string
	for i, published := range []bool{false, true} {
		m := newMsg(strconv.Itoa(i))
		if !published {
			movedID = m.UUID
		}
		if err := quiet.Schedule(ctx, testEvent, due, m); err != nil {
			t.Fatal(err)
		}
		s, err := quiet.scheduleStream(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		subject := quiet.opts.scheduleSubject(testEvent, m.UUID)
		sm, err := s.GetLastMsgForSubject(ctx, subject)
		if err != nil {
			t.Fatal(err)
		}
		h := natsgo.Header{}
		for k, v := range sm.Header {
			h[k] = v
		}
		h.Set(HeaderScheduleState, schedStateMoving)
		h.Set(HeaderScheduleMover, "dead/"+strconv.FormatUint(sm.Sequence, 10))
		if _, err := quiet.js.PublishMsg(ctx, &natsgo.Msg{Subject: subject, Header: h, Data: sm.Data}, jetstream.WithExpectLastSequencePerSubject(sm.Sequence)); err != nil {
			t.Fatal(err)
		}
		if published {
			if err := quiet.Publish(testEvent, m); err != nil {
				t.Fatal(err)
			}
		}
		if err := quiet.CancelScheduled(ctx, m.UUID); !errors.Is(err, transports.ErrNotScheduled) {
			t.Fatalf("cancel of an event being moved: got %v, want ErrNotScheduled", err)
		}
	}
	openTransport(t, raw)
	waitFor(t, "both events moved and their markers deleted", func() bool {
		return len(streamMsgs(t, quiet, testEvent)) == 2 && len(scheduleMsgs(t, quiet)) == 0
	})
	stored := streamMsgs(t, quiet, testEvent)
	for id, ms := range stored {
		if len(ms) != 1 {
			t.Errorf("event %s stored %d times", id, len(ms))
		}
	}
	// The event the test did not publish itself was moved by the mover.
	if ms := stored[movedID]; len(ms) == 1 {
		md, err := ms[0].Metadata()
		if err != nil {
			t.Fatal(err)
		}
		if md.Timestamp.Before(due.Truncate(time.Millisecond)) {
			t.Errorf("the dead mover's marker was finished %s before the event's due time", due.Sub(md.Timestamp))
		}
	}
}

// A cancel and a move of the same event exclude each other: an event
// whose cancel returned nil never reaches its stream, and one whose
// cancel said ErrNotScheduled does. The cancels are sent around the times
// the mover claims the events (scheduleClaimAhead before they are due),
// so that both outcomes occur in most runs; the check holds whatever the
// timing.
func TestScheduleCancelRacesMove(t *testing.T) {
	tr := openTransport(t, testURL(t, "", ""))
	ctx := context.Background()
	const n = 200
	start := time.Now().Add(300 * time.Millisecond)
	ids := make([]string, n)
	dues := make([]time.Time, n)
	for i := range n {
		m := newMsg(strconv.Itoa(i))
		ids[i], dues[i] = m.UUID, start.Add(time.Duration(i)*time.Millisecond)
		if err := tr.Schedule(ctx, testEvent, dues[i], m); err != nil {
			t.Fatal(err)
		}
	}
	cancelled := make([]bool, n)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < n; i += 4 {
				// From a bit before the mover claims it to its due time.
				time.Sleep(time.Until(dues[i].Add(-scheduleClaimAhead - 20*time.Millisecond + time.Duration(i%70)*time.Millisecond)))
				err := tr.CancelScheduled(ctx, ids[i])
				switch {
				case err == nil:
					cancelled[i] = true
				case !errors.Is(err, transports.ErrNotScheduled):
					t.Errorf("cancel %d: %v", i, err)
				}
			}
		})
	}
	wg.Wait()
	waitFor(t, "every event not cancelled in its stream", func() bool {
		got := streamMsgs(t, tr, testEvent)
		for i, id := range ids {
			if !cancelled[i] && len(got[id]) == 0 {
				return false
			}
		}
		return true
	})
	waitFor(t, "the schedule stream to be empty", func() bool { return len(scheduleMsgs(t, tr)) == 0 })
	got := streamMsgs(t, tr, testEvent)
	nc := 0
	for i, id := range ids {
		if cancelled[i] {
			nc++
			if len(got[id]) != 0 {
				t.Errorf("event %d: cancel returned nil, yet it is in its stream", i)
			}
		} else if len(got[id]) != 1 {
			t.Errorf("event %d: in its stream %d times, want 1", i, len(got[id]))
		}
	}
	t.Logf("%d of %d cancels won against the move", nc, n)
}

// Subjects of scheduled events carry any event ID in one token, and map
// back to it; the lease message names token, time to live and process.
func TestScheduleNames(t *testing.T) {
	o := DefaultOptions()
	for _, id := range []string{"01a232c5-d3aa-7bff-91ae-a8c4a807c83e", "order_42", "a.b c*>", "~x", ""} {
		tok := idToken(id)
		if strings.ContainsAny(tok, ". *>") || tok == "" {
			t.Errorf("idToken(%q) = %q: not one subject token", id, tok)
		}
		gotTok, event, ok := o.splitScheduleSubject(o.scheduleSubject("orders.placed", id))
		if !ok || gotTok != tok || event != "orders.placed" {
			t.Errorf("split(scheduleSubject(%q)) = %q %q %v", id, gotTok, event, ok)
		}
	}
	if idToken("~x") == idToken("x") || idToken("a.b") == "a.b" {
		t.Error("two IDs share a token")
	}
	if _, _, ok := o.splitScheduleSubject(o.leaseSubject()); ok {
		t.Error("the lease subject read as a scheduled event")
	}
	lm := parseLease(7, []byte("tok 1000 web 1"))
	if lm.seq != 7 || lm.token != "tok" || lm.ttl != time.Second || lm.process != "web 1" {
		t.Errorf("parseLease = %+v", lm)
	}
	if lm := parseLease(8, nil); lm.token != "" || lm.ttl != scheduleLease {
		t.Errorf("parseLease of a release = %+v", lm)
	}
}
