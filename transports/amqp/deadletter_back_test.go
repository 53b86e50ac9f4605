package amqp

import (
	"context"
	"strconv"
	"testing"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// Listing the dead letters of a quorum queue holds them (basic.get) and
// returns them when its channel closes, which a quorum queue applies
// afterwards: the listing returns only once they are back, so that a
// RemoveGroup right after it does not see an empty dead-letter queue and
// delete the dead letters it was asked to keep.
func TestDeadLettersBackAfterListing(t *testing.T) {
	tr := openForTest(t, testURL(t, "", "queue_type=quorum"))
	ch := rawChannel(t)
	q := tr.tp.deadQueue("svc-kept")
	if _, err := ch.QueueDeclare(q, true, false, false, false, amqp091.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = rawChannel(t).QueueDelete(q, false, false, false) })
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	const n = 3
	for i := range n {
		dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "", q, false, false, amqp091.Publishing{
			Headers: amqp091.Table{HeaderDeadID: "d" + strconv.Itoa(i), HeaderDeadGroup: "svc-kept"}, Body: []byte(`{}`),
		})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := dc.WaitContext(context.Background()); err != nil || !ok {
			t.Fatalf("confirm: %v %v", ok, err)
		}
	}
	for round := range 30 {
		dead, err := tr.DeadLetters(context.Background(), "svc-kept", 0)
		if err != nil || len(dead) != n {
			t.Fatalf("round %d: %d dead letters (%v), want %d", round, len(dead), err, n)
		}
		// On the channel already open: at once, as a RemoveGroup would.
		info, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if info.Messages != n {
			t.Fatalf("round %d: right after the listing the dead-letter queue counts %d ready messages, want %d", round, info.Messages, n)
		}
	}
}
