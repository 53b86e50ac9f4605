package amqp

import (
	"context"
	"errors"
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
	if err := tr.Publish("names.checked", message.NewMessage("before", []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	before, err := tr.pubConn.current()
	if err != nil {
		t.Fatal(err)
	}
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
	if err := tr.Publish("names.checked", message.NewMessage("after", []byte(`{}`))); err != nil {
		t.Fatalf("publish after the long names: %v", err)
	}
	after, err := tr.pubConn.current()
	if err != nil || after != before || after.IsClosed() {
		t.Fatalf("the publishing connection changed or closed (%v)", err)
	}
}

// A publish holding a short string AMQP cannot carry (an event name, an
// event ID, a metadata key or the content type over 255 bytes) fails with
// ErrTooLong before anything is sent; the connection keeps serving the
// publishes of everyone else.
func TestTooLongPublishLeavesPublishingAlone(t *testing.T) {
	tr := openForTest(t, testURL(t, "", ""))
	if err := tr.Publish("names.checked", message.NewMessage("before", []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	before, err := tr.pubConn.current()
	if err != nil {
		t.Fatal(err)
	}
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
	if err := tr.Publish("names.checked", message.NewMessage("after", []byte(`{}`))); err != nil {
		t.Fatalf("publish after the long names: %v", err)
	}
	after, err := tr.pubConn.current()
	if err != nil || after != before || after.IsClosed() {
		t.Fatalf("the publishing connection changed or closed (%v)", err)
	}
}
