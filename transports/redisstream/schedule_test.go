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

// An entry whose stream cannot take it (the key holds another type) stays
// scheduled and is retried; it does not hold up the entries due after it,
// and is moved once its stream can take it.
func TestScheduleFailedMoveDoesNotBlock(t *testing.T) {
	tr := openTransport(t, testURL(t, ""))
	ctx := context.Background()
	c := tr.Client()
	if err := c.Set(ctx, tr.StreamKey("sched.bad"), "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := tr.Schedule(ctx, "sched.bad", now.Add(20*time.Millisecond), message.NewMessage("sched-bad-1", []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	if err := tr.Schedule(ctx, "sched.good", now.Add(40*time.Millisecond), message.NewMessage("sched-good-1", []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the event due after a failing one to be moved", func() bool {
		return c.XLen(ctx, tr.StreamKey("sched.good")).Val() == 1
	})
	if n := c.Exists(ctx, tr.scheduleKeys().entryPrefix+"sched-bad-1").Val(); n != 1 {
		t.Fatalf("the entry whose move failed is no longer scheduled")
	}
	if err := c.Del(ctx, tr.StreamKey("sched.bad")).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the failed entry to be moved once its stream can take it", func() bool {
		return c.XLen(ctx, tr.StreamKey("sched.bad")).Val() == 1
	})
}

func TestMoveResult(t *testing.T) {
	r, err := moveResult([]any{int64(3), int64(-1), int64(1), "id: WRONGTYPE"})
	if err != nil || r.moved != 3 || r.after != -1 || r.failed != 1 || r.lastErr != "id: WRONGTYPE" {
		t.Fatalf("moveResult = %+v, %v", r, err)
	}
	if r, err := moveResult([]any{int64(-1), int64(40)}); err != nil || r.moved != -1 || r.after != 40 {
		t.Fatalf("moveResult(lease held) = %+v, %v", r, err)
	}
	for _, bad := range [][]any{{int64(1)}, {"x", int64(1)}, {int64(1), int64(2), int64(3)}} {
		if _, err := moveResult(bad); err == nil {
			t.Errorf("moveResult(%v): no error", bad)
		}
	}
}
