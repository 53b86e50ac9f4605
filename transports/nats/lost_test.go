package nats

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	natsgo "github.com/nats-io/nats.go"

	"github.com/busline/busline/internal/brokertest"
)

// The dead-letter stream deleted under a running transport (by an
// operator, or lost by a server restarted without its store) is made
// again by the next dead letter, which is stored.
func TestDeadStreamMadeAgain(t *testing.T) {
	tr := openTransport(t, testURL(t, "", ""))
	ctx := context.Background()
	m := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
	if err := tr.DeadLetter(ctx, "svc-lost", m, "first", 1); err != nil {
		t.Fatal(err)
	}
	if err := tr.JetStream().DeleteStream(ctx, tr.Options().DeadStream()); err != nil {
		t.Fatal(err)
	}
	if err := tr.DeadLetter(ctx, "svc-lost", m, "after the stream was deleted", 1); err != nil {
		t.Fatalf("dead letter after the stream was deleted: %v", err)
	}
	dls, err := tr.DeadLetters(ctx, "svc-lost", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].Reason != "after the stream was deleted" {
		t.Fatalf("dead letters %+v, want the one stored after the stream was made again", dls)
	}
}

// The record bucket deleted under a running transport costs one failed
// call at most: the next write makes it again and stores its record.
func TestRecordBucketMadeAgain(t *testing.T) {
	// A claim on a deleted bucket waits inside nats.go for the request
	// timeout before it reports the bucket gone.
	tr := openTransport(t, testURL(t, "", "timeout=2s"))
	ctx := context.Background()
	if err := tr.PutRecord(ctx, "owners", "before", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := tr.JetStream().DeleteKeyValue(ctx, tr.Options().RecordBucket()); err != nil {
		t.Fatal(err)
	}
	if err := tr.PutRecord(ctx, "owners", "after", []byte("2")); err != nil {
		t.Fatalf("put after the bucket was deleted: %v", err)
	}
	got, err := tr.Records(ctx, "owners")
	if err != nil {
		t.Fatal(err)
	}
	if string(got["after"]) != "2" || len(got) != 1 {
		t.Fatalf("records %q, want only after=2 (the bucket was made again)", got)
	}
	if err := tr.JetStream().DeleteKeyValue(ctx, tr.Options().RecordBucket()); err != nil {
		t.Fatal(err)
	}
	if v, err := tr.ClaimRecord(ctx, "owners", "claimed", []byte("3")); err != nil || string(v) != "3" {
		t.Fatalf("claim after the bucket was deleted: %q, %v", v, err)
	}
	if err := tr.JetStream().DeleteKeyValue(ctx, tr.Options().RecordBucket()); err != nil {
		t.Fatal(err)
	}
	if err := tr.DeleteRecord(ctx, "owners", "claimed"); err != nil {
		t.Fatalf("delete after the bucket was deleted: %v", err)
	}
	// Reads alone (a dashboard, group removal, a process opening) recover too.
	if err := tr.PutRecord(ctx, "owners", "again", []byte("4")); err != nil {
		t.Fatal(err)
	}
	if err := tr.JetStream().DeleteKeyValue(ctx, tr.Options().RecordBucket()); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if got, err := tr.Records(ctx, "owners"); err != nil || len(got) != 0 {
			t.Fatalf("records read %d after the bucket was deleted: %q, %v; want none, no error", i, got, err)
		}
	}
	if err := tr.PutRecord(ctx, "owners", "again", []byte("5")); err != nil {
		t.Fatal(err)
	}
	if err := tr.JetStream().DeleteKeyValue(ctx, tr.Options().RecordBucket()); err != nil {
		t.Fatal(err)
	}
	openSub(t, tr, "svc-opened-after", time.Minute) // reads its held set: none
	if got, err := tr.Records(ctx, "owners"); err != nil || len(got) != 0 {
		t.Fatalf("records after a subscription opened on a deleted bucket: %q, %v", got, err)
	}
}

// A read while the connection is down fails without sending a pull
// request: nats.go would leave the inbox subscription of each such
// request behind for the life of the connection.
func TestReadWhileDisconnectedLeavesNoSubscription(t *testing.T) {
	srv := brokertest.StartNATSServer(t)
	tr := openTransport(t, testURL(t, srv.URL(), "timeout=2s"))
	s := openSub(t, tr, "svc-down", time.Minute)
	before := tr.nc.NumSubscriptions()
	srv.Stop(syscall.SIGKILL)
	deadline := time.Now().Add(10 * time.Second)
	for tr.nc.IsConnected() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if tr.nc.IsConnected() {
		t.Fatal("the client still says it is connected 10s after the server was killed")
	}
	for range 5 {
		_, err := s.Receive(context.Background(), 4, 50*time.Millisecond)
		if !errors.Is(err, natsgo.ErrDisconnected) {
			t.Fatalf("read while disconnected: %v, want an error wrapping nats.ErrDisconnected", err)
		}
	}
	if after := tr.nc.NumSubscriptions(); after != before {
		t.Fatalf("client subscriptions %d after five reads while disconnected, %d before", after, before)
	}
}
