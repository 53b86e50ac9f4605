package amqp

import (
	"context"
	"slices"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/busline/busline/transports"
)

// TestMoverRedeliveryKeepsItsPlace: the deliveries a killed mover held go
// back to the head of the schedule queue, flagged Redelivered. The next
// mover takes them from there, first: republished at the tail (as the
// redeliveries of a classic group queue are, to count attempts), these
// most overdue events waited for every event that expired meanwhile
// (2 s after the restart in the mover-kill fault test under load).
func TestMoverRedeliveryKeepsItsPlace(t *testing.T) {
	tr := openForTest(t, testURL(t, "", ""))
	queue := tr.tp.groupQueue(scheduleGroup)
	if err := tr.admin.ensure(tr.tp, queue, tr.tp.groupArgs(scheduleGroup)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ids := []string{"held", "second", "third"}
	for _, id := range ids {
		if err := tr.pool.publish(ctx, "", queue, amqp091.Publishing{MessageId: id, Body: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}

	// A mover takes the first and dies with it unacknowledged.
	conn, err := amqp091.Dial(tr.dialURL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	ds, err := ch.Consume(queue, "dying-mover", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-ds:
		if d.MessageId != ids[0] {
			t.Fatalf("first delivery %q, want %q", d.MessageId, ids[0])
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery")
	}
	_ = conn.Close()
	eventually(t, 10*time.Second, "the held delivery back in the queue", func() bool {
		c, err := amqp091.Dial(tr.dialURL)
		if err != nil {
			return false
		}
		defer func() { _ = c.Close() }()
		pch, err := c.Channel()
		if err != nil {
			return false
		}
		q, err := pch.QueueDeclarePassive(queue, true, false, false, false, nil)
		return err == nil && q.Messages == len(ids)
	})

	sub, err := tr.moverDriver().Open(ctx, scheduleTopic, transports.SubscriberConfig{
		Group: scheduleGroup, Consumer: "mover", AckTimeout: time.Minute, Concurrency: len(ids),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	var got []string
	attempts := map[string]int{}
	eventually(t, 10*time.Second, "every waiting event received", func() bool {
		msgs, err := sub.Receive(ctx, len(ids), 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			got = append(got, m.Message.UUID)
			attempts[m.Message.UUID] = m.Attempts
		}
		return len(got) >= len(ids)
	})
	if !slices.Equal(got, ids) {
		t.Errorf("received %v, want %v: the held event first, where it was", got, ids)
	}
	if attempts[ids[0]] != 1 {
		t.Errorf("held event: %d earlier attempts, want 1 (the broker's redelivery flag)", attempts[ids[0]])
	}
}
