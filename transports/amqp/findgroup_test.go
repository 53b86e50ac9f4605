package amqp

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/busline/busline/transports"
)

// A group whose queue exists is found by a passive declaration: checking
// it (the dashboard does on every view of an empty dead-letter list)
// appends nothing to the owner records' log, which is never trimmed.
func TestCheckGroupKnownFindsQueueWithoutRecordsRead(t *testing.T) {
	raw := testURL(t, "", "")
	tr := openForTest(t, raw)
	o := optionsOf(t, raw)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	ch := rawChannel(t)
	if _, err := ch.QueueDeclare(o.QueuePrefix+"billing", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(o.QueuePrefix+"refunds.dead", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = ch.QueueDelete(o.QueuePrefix+"billing", false, false, false)
		_, _ = ch.QueueDelete(o.QueuePrefix+"refunds.dead", false, false, false)
	})

	for _, g := range []string{"billing", "refunds"} {
		found, err := tr.FindGroup(ctx, g)
		if err != nil || !found {
			t.Errorf("FindGroup(%q) = %v, %v; want true", g, found, err)
		}
		if err := transports.CheckGroupKnown(ctx, tr, g); err != nil {
			t.Errorf("CheckGroupKnown(%q): %v", g, err)
		}
	}
	if n := queueLen(t, tr.RecordsQueue(transports.RecordKindOwners)); n != -1 {
		t.Errorf("the owner records queue exists (%d messages): checking known groups read the records", n)
	}

	found, err := tr.FindGroup(ctx, "nobody")
	if err != nil || found {
		t.Errorf("FindGroup(nobody) = %v, %v; want false", found, err)
	}
	if err := transports.CheckGroupKnown(ctx, tr, "nobody"); !errors.Is(err, transports.ErrNotFound) {
		t.Errorf("CheckGroupKnown(nobody): %v; want ErrNotFound", err)
	}
}
