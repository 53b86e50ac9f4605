package amqp

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
)

// A group whose queue names AMQP cannot carry (over 255 bytes) never
// reaches a channel: the dead-letter commands, which take names from
// users, find nothing; a subscriber is refused; and the publishing
// connection, which the client would close on a name it cannot encode,
// keeps serving publishes.
func TestGroupTooLongLeavesPublishingAlone(t *testing.T) {
	tr := openForTest(t, testURL(t, "", ""))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stillPublishing := publishingConnection(t, tr)
	long := strings.Repeat("x", 300)
	if _, err := tr.DeadLetters(ctx, long, 0); !errors.Is(err, transports.ErrNotFound) {
		t.Errorf("DeadLetters of a 300-byte group: %v; want ErrNotFound", err)
	}
	if err := tr.ReplayDeadLetter(ctx, long, "id"); !errors.Is(err, transports.ErrNotFound) {
		t.Errorf("ReplayDeadLetter of a 300-byte group: %v; want ErrNotFound", err)
	}
	if _, err := tr.PurgeDeadLetters(ctx, long); !errors.Is(err, transports.ErrNotFound) {
		t.Errorf("PurgeDeadLetters of a 300-byte group: %v; want ErrNotFound", err)
	}
	if _, err := tr.NewSubscriber(transports.SubscriberConfig{Group: long, Consumer: "c", AckTimeout: time.Minute, Concurrency: 1}); !errors.Is(err, transports.ErrInvalidConfig) {
		t.Errorf("NewSubscriber of a 300-byte group: %v; want ErrInvalidConfig", err)
	}
	stillPublishing()
}

// A publish holding a short string AMQP cannot carry (an event name, an
// event ID, a metadata key or the content type over 255 bytes) fails with
// ErrTooLong before anything is sent; the connection keeps serving the
// publishes of everyone else.
func TestTooLongPublishLeavesPublishingAlone(t *testing.T) {
	tr := openForTest(t, testURL(t, "", ""))
	stillPublishing := publishingConnection(t, tr)
	long := strings.Repeat("y", 300)
	withMeta := func(k, v string) *message.Message {
		m := message.NewMessage("m", []byte(`{}`))
		m.Metadata.Set(k, v)
		return m
	}
	for what, publish := range map[string]func() error{
		"event name":   func() error { return tr.Publish("names."+long, message.NewMessage("a", []byte(`{}`))) },
		"event ID":     func() error { return tr.Publish("names.checked", message.NewMessage(long, []byte(`{}`))) },
		"metadata key": func() error { return tr.Publish("names.checked", withMeta(long, "v")) },
		"content type": func() error { return tr.Publish("names.checked", withMeta("content-type", long)) },
	} {
		if err := publish(); !errors.Is(err, ErrTooLong) {
			t.Errorf("publish with a 300-byte %s: %v; want ErrTooLong", what, err)
		}
	}
	stillPublishing()
}

// The transport's own names are checked at Open (a queue_prefix or
// exchange that makes them too long is a bad URL), and the other names a
// caller gives (a scheduled event's name, a consumer name, a group to
// inspect) before they reach a channel.
func TestNamesTooLongAreRefusedEarly(t *testing.T) {
	long := strings.Repeat("z", 240)
	u, err := url.Parse(testURL(t, "", "") + "&queue_prefix=" + long)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), u, transports.OpenOptions{}); !errors.Is(err, transports.ErrInvalidURL) || !errors.Is(err, ErrTooLong) {
		t.Errorf("Open with a 240-byte queue_prefix: %v; want ErrInvalidURL and ErrTooLong", err)
	}

	tr := openForTest(t, testURL(t, "", ""))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tr.Schedule(ctx, "names."+strings.Repeat("y", 300), time.Now().Add(time.Hour), message.NewMessage("s", []byte(`{}`))); !errors.Is(err, ErrTooLong) {
		t.Errorf("Schedule of a 300-byte event name: %v; want ErrTooLong", err)
	}
	if _, err := tr.NewSubscriber(transports.SubscriberConfig{Group: "g", Consumer: strings.Repeat("c", 300), AckTimeout: time.Minute, Concurrency: 1}); !errors.Is(err, transports.ErrInvalidConfig) {
		t.Errorf("NewSubscriber with a 300-byte consumer: %v; want ErrInvalidConfig", err)
	}
	in, err := tr.Inspect(ctx, transports.InspectOptions{Groups: []string{strings.Repeat("x", 300)}})
	if err != nil || len(in.Groups) != 0 || len(in.Notes) == 0 {
		t.Errorf("Inspect of a 300-byte group = %+v, %v; want no group and a note", in, err)
	}
}

// publishingConnection publishes once and returns a check that the
// transport still publishes, on the same connection, still open.
func publishingConnection(t *testing.T, tr *Transport) func() {
	t.Helper()
	if err := tr.Publish("names.checked", message.NewMessage("before", []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	before, err := tr.pubConn.current()
	if err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if err := tr.Publish("names.checked", message.NewMessage("after", []byte(`{}`))); err != nil {
			t.Fatalf("publish after the long names: %v", err)
		}
		after, err := tr.pubConn.current()
		if err != nil || after != before || after.IsClosed() {
			t.Fatalf("the publishing connection changed or closed (%v)", err)
		}
	}
}

// Opening a URL whose port accepts connections but does not speak AMQP
// ends when ctx does, not after the client's 30 s handshake timeout.
func TestOpenHonoursContextOnASilentPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, silent, until the listener closes
		}
	}()
	u, err := url.Parse("amqp://guest:guest@" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := Open(ctx, u, transports.OpenOptions{}); err == nil {
		t.Fatal("Open of a silent port succeeded")
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("Open of a silent port took %v with a 500ms context", took)
	}
}
