package amqp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/transporttest"
)

func TestRecordStore(t *testing.T) {
	raw := testURL(t, "", "")
	transporttest.RunRecordStore(t, func(t *testing.T) transports.RecordStore {
		return openForTest(t, raw)
	})
}

// logEntry is one entry of a records log, with its offset.
type logEntry struct {
	offset int64
	op     recordOp
}

// readLog appends a sync marker to the log of kind and returns every entry
// up to it, and the folds of fn at the marker.
func readLog(t *testing.T, tr *Transport, kind string, fn func(ch *amqp091.Channel, until string)) []logEntry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var entries []logEntry
	err := tr.recordsSession(ctx, kind, func(ch *amqp091.Channel) error {
		q := tr.RecordsQueue(kind)
		until, err := appendRecord(ctx, ch, q, recordOp{Op: "sync"})
		if err != nil {
			return err
		}
		if fn != nil {
			fn(ch, until)
		}
		if err := ch.Qos(100, 0, false); err != nil {
			return err
		}
		c, err := ch.ConsumeWithContext(ctx, q, "", false, false, false, false, amqp091.Table{"x-stream-offset": "first"})
		if err != nil {
			return err
		}
		for d := range c {
			off, _ := streamOffset(d)
			var op recordOp
			if err := json.Unmarshal(d.Body, &op); err != nil {
				return err
			}
			entries = append(entries, logEntry{off, op})
			if err := d.Ack(false); err != nil {
				return err
			}
			if d.MessageId == until {
				return nil
			}
		}
		return ctx.Err()
	})
	if err != nil {
		t.Fatalf("read the log: %v", err)
	}
	return entries
}

func snapshots(entries []logEntry) []logEntry {
	var out []logEntry
	for _, e := range entries {
		if e.op.Op == "snapshot" {
			out = append(out, e)
		}
	}
	return out
}

// appendOps appends n entries to the log of kind on one channel, the i-th
// made by op(i), and applies them to model.
func appendOps(t *testing.T, tr *Transport, kind string, n int, model map[string]string, op func(i int) recordOp) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := tr.recordsSession(ctx, kind, func(ch *amqp091.Channel) error {
		for i := range n {
			o := op(i)
			if _, err := appendRecord(ctx, ch, tr.RecordsQueue(kind), o); err != nil {
				return err
			}
			switch o.Op {
			case "put":
				model[o.Key] = string(o.Value)
			case "delete":
				delete(model, o.Key)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("append: %v", err)
	}
}

func wantModel(t *testing.T, what string, got map[string][]byte, model map[string]string) {
	t.Helper()
	if !maps.EqualFunc(got, model, func(v []byte, w string) bool { return string(v) == w }) {
		t.Fatalf("%s: %d records, want %d (the model)", what, len(got), len(model))
	}
}

func TestRecordsLogSnapshots(t *testing.T) {
	tr := openForTest(t, testURL(t, "", ""))
	ctx := context.Background()
	const kind = "owners"
	model := map[string]string{}
	churn := func(round int) func(i int) recordOp {
		return func(i int) recordOp {
			if i%3 == 2 {
				return recordOp{Op: "delete", Key: fmt.Sprintf("k%d-%d", round, i-1)}
			}
			return recordOp{Op: "put", Key: fmt.Sprintf("k%d-%d", round, i), Value: []byte(fmt.Sprint(i))}
		}
	}

	// A log shorter than snapshotEvery gets no snapshot.
	appendOps(t, tr, kind, 100, model, churn(0))
	recs, err := tr.Records(ctx, kind)
	if err != nil {
		t.Fatal(err)
	}
	wantModel(t, "a short log", recs, model)
	if n := len(snapshots(readLog(t, tr, kind, nil))); n != 0 {
		t.Fatalf("%d snapshots in a log of about 100 entries", n)
	}

	// A fold that reads more than snapshotEvery entries past its base
	// appends one, and the next fold does not.
	appendOps(t, tr, kind, snapshotEvery, model, churn(1))
	if recs, err = tr.Records(ctx, kind); err != nil {
		t.Fatal(err)
	}
	wantModel(t, "a longer log", recs, model)
	if got, err := tr.ClaimRecord(ctx, kind, "k1-0", []byte("late")); err != nil || string(got) != "0" {
		t.Fatalf("ClaimRecord(k1-0) = %q, %v; want the first value", got, err)
	}
	snaps := snapshots(readLog(t, tr, kind, nil))
	if len(snaps) != 1 || !maps.EqualFunc(snaps[0].op.Records, model, func(v []byte, w string) bool { return string(v) == w }) {
		t.Fatalf("%d snapshots, want 1 holding the model", len(snaps))
	}

	// Past readBack entries after it, a fold starts after the snapshot,
	// finds none covering what it skipped, folds from the first entry and
	// appends a second.
	appendOps(t, tr, kind, readBack+snapshotEvery/2, model, churn(2))
	if recs, err = tr.Records(ctx, kind); err != nil {
		t.Fatal(err)
	}
	wantModel(t, "a log past its snapshot", recs, model)
	appendOps(t, tr, kind, 50, model, churn(3))

	q := tr.RecordsQueue(kind)
	var second logEntry
	var fromSnap, afterSnap, window error
	var fromSnapRecs map[string][]byte
	var windowEnd foldEnd
	entries := readLog(t, tr, kind, func(ch *amqp091.Channel, until string) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		snaps := snapshots(readLog(t, tr, kind, nil))
		if len(snaps) != 2 {
			t.Errorf("%d snapshots, want 2", len(snaps))
			return
		}
		second = snaps[1]
		var end foldEnd
		// Starting at the snapshot, the fold takes it as its base.
		end, fromSnap = foldRecords(ctx, ch, q, until, second.offset)
		fromSnapRecs = end.records
		// Starting right after it, nothing covers what the fold skipped.
		_, afterSnap = foldRecords(ctx, ch, q, until, second.offset+1)
		// What Records and ClaimRecord do: it starts readBack entries
		// before the end and finds the snapshot.
		windowEnd, window = appendAndFoldOn(ctx, ch, q, recordOp{Op: "sync"})
	})
	if t.Failed() {
		return
	}
	if n := len(snapshots(entries)); n != 2 {
		t.Fatalf("%d snapshots after more folds, want still 2", n)
	}
	if fromSnap != nil {
		t.Fatalf("fold from the snapshot: %v", fromSnap)
	}
	wantModel(t, "the fold from the snapshot", fromSnapRecs, model)
	if !errors.Is(afterSnap, errNoBase) {
		t.Fatalf("fold from after the snapshot: %v, want errNoBase", afterSnap)
	}
	if window != nil {
		t.Fatalf("fold after an append: %v", window)
	}
	if windowEnd.first <= 0 || windowEnd.first > second.offset || windowEnd.base != second.op.Upto {
		t.Fatalf("the fold after an append read from offset %d with a base up to %d; want a start after 0, at or before the snapshot at %d, and its base up to %d",
			windowEnd.first, windowEnd.base, second.offset, second.op.Upto)
	}
	if windowEnd.offset-windowEnd.first > readBack+100 {
		t.Fatalf("the fold read %d entries, want about readBack (%d)", windowEnd.offset-windowEnd.first, readBack)
	}
	wantModel(t, "the fold after an append", windowEnd.records, model)
}
