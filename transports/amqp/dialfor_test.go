package amqp

import (
	"context"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// dialFor's connection is closed when the operation's context ends, when
// the transport drops its connections, and at release: a broker that
// stops answering cannot hold the operation past any of them (amqp091
// waits for replies without a deadline of its own).
func TestDialForEndsWithItsOperation(t *testing.T) {
	tr := openForTest(t, testURL(t, "", ""))
	closedWithin := func(t *testing.T, conn *amqp091.Connection, why string) {
		t.Helper()
		select {
		case <-conn.NotifyClose(make(chan *amqp091.Error, 1)):
		case <-time.After(10 * time.Second):
			t.Fatalf("the connection is still open 10 s after %s", why)
		}
	}

	t.Run("context ends", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		conn, release, err := tr.dialFor(ctx, "test dialFor")
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		if conn.IsClosed() {
			t.Fatal("closed before its context ended")
		}
		cancel()
		closedWithin(t, conn, "its context ended")
	})

	t.Run("release", func(t *testing.T) {
		conn, release, err := tr.dialFor(context.Background(), "test dialFor")
		if err != nil {
			t.Fatal(err)
		}
		release()
		if !conn.IsClosed() {
			t.Fatal("open after release")
		}
		release() // twice is harmless
	})

	t.Run("transport drops its connections", func(t *testing.T) {
		conn, release, err := tr.dialFor(context.Background(), "test dialFor")
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		tr.DropConnections()
		closedWithin(t, conn, "DropConnections")
	})
}
