package redisstream

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	wrs "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
)

// A moved entry has the layout of a normal Publish: Busline's decoder and
// watermill-redisstream's unmarshaller both read it, metadata included.
func TestScheduleMovedEntryLayout(t *testing.T) {
	tr := openTransport(t, testURL(t, ""))
	ctx := context.Background()
	msg := message.NewMessage("sched-layout-1", []byte(`{"n":1}`))
	msg.Metadata.Set("ce-type", "sched.layout")
	if err := tr.Schedule(ctx, "sched.layout", time.Now().Add(30*time.Millisecond), msg); err != nil {
		t.Fatal(err)
	}
	stream := tr.StreamKey("sched.layout")
	var entries []map[string]any
	eventually(t, 10*time.Second, "the entry to be moved", func() bool {
		xs, err := tr.Client().XRange(ctx, stream, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		entries = nil
		for _, x := range xs {
			entries = append(entries, x.Values)
		}
		return len(xs) > 0
	})
	if len(entries) != 1 {
		t.Fatalf("stream holds %d entries, want 1", len(entries))
	}
	got, err := decode("0-1", entries[0])
	if err != nil || got.UUID != msg.UUID || string(got.Payload) != string(msg.Payload) || got.Metadata.Get("ce-type") != "sched.layout" {
		t.Fatalf("decode: %v %+v", err, got)
	}
	w, err := wrs.DefaultMarshallerUnmarshaller{}.Unmarshal(entries[0])
	if err != nil || w.UUID != msg.UUID || w.Metadata.Get("ce-type") != "sched.layout" {
		t.Fatalf("watermill-redisstream unmarshal: %v %+v", err, w)
	}
	if n, err := tr.Client().Exists(ctx, tr.scheduleKeys().entryPrefix+msg.UUID, tr.scheduleKeys().index).Result(); err != nil || n != 0 {
		t.Fatalf("schedule keys left after the move: %d (%v)", n, err)
	}
}

// Scheduling an ID again replaces the earlier one, also across events.
func TestScheduleReplace(t *testing.T) {
	tr := openTransport(t, testURL(t, ""))
	ctx := context.Background()
	later := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	for _, topic := range []string{"sched.one", "sched.two"} {
		if err := tr.Schedule(ctx, topic, later, message.NewMessage("same-id", nil)); err != nil {
			t.Fatal(err)
		}
	}
	list, err := tr.Scheduled(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Event != "sched.two" || list[0].Count != 1 || !list[0].NextDue.Equal(later) {
		t.Fatalf("Scheduled after a replace: %+v", list)
	}
	if err := tr.CancelScheduled(ctx, "same-id"); err != nil {
		t.Fatal(err)
	}
	if err := tr.CancelScheduled(ctx, "same-id"); !errors.Is(err, transports.ErrNotScheduled) {
		t.Fatalf("second cancel: %v", err)
	}
}

// A transport with no_schedule_mover=true schedules but never moves; a
// transport with a mover on the same prefix moves its events.
func TestScheduleNoMover(t *testing.T) {
	url := testURL(t, "")
	quiet := openTransport(t, url+"&no_schedule_mover=true")
	if !quiet.Options().NoScheduleMover {
		t.Fatal("no_schedule_mover=true not parsed")
	}
	ctx := context.Background()
	if err := quiet.Schedule(ctx, "sched.quiet", time.Now().Add(20*time.Millisecond), message.NewMessage("quiet-1", nil)); err != nil {
		t.Fatal(err)
	}
	stream := quiet.StreamKey("sched.quiet")
	// Past due and still waiting: nobody moves it.
	eventually(t, 5*time.Second, "the due time to pass", func() bool {
		list, err := quiet.Scheduled(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(list) == 1 && time.Now().After(list[0].NextDue.Add(100*time.Millisecond))
	})
	if n, _ := quiet.Client().XLen(ctx, stream).Result(); n != 0 {
		t.Fatalf("a transport without a mover moved %d entries", n)
	}
	openTransport(t, url)
	eventually(t, 10*time.Second, "a transport with a mover to move it", func() bool {
		n, _ := quiet.Client().XLen(ctx, stream).Result()
		return n == 1
	})
}

// Redis killed (SIGKILL, AOF fsync always) while events wait and while
// they become due: every event is moved once, after Redis is back, by the
// mover of the transport that scheduled them.
func TestScheduleRedisRestart(t *testing.T) {
	needRedis(t)
	srv := startRedisServer(t)
	url := srv.url("")
	tr := openTransport(t, url)
	ctx := context.Background()
	const n = 50
	first := time.Now().Add(300 * time.Millisecond)
	for i := range n {
		msg := message.NewMessage("restart-"+strconv.Itoa(i), nil)
		if err := tr.Schedule(ctx, "sched.restart", first.Add(time.Duration(i)*10*time.Millisecond), msg); err != nil {
			t.Fatal(err)
		}
	}
	srv.kill()
	time.Sleep(time.Until(first.Add(n * 10 * time.Millisecond))) // every event falls due while Redis is down
	srv.start()
	stream := tr.StreamKey("sched.restart")
	eventually(t, 20*time.Second, "every event in its stream", func() bool {
		l, _ := tr.Client().XLen(ctx, stream).Result()
		return l >= n
	})
	xs, err := tr.Client().XRange(ctx, stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, x := range xs {
		id, _ := x.Values[fieldUUID].(string)
		seen[id]++
	}
	for i := range n {
		if c := seen["restart-"+strconv.Itoa(i)]; c != 1 {
			t.Errorf("event restart-%d in the stream %d times, want 1", i, c)
		}
	}
}
