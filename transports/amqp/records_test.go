package amqp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/url"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/transporttest"
)

func TestRecordStore(t *testing.T) {
	raw := testURL(t, "", "")
	transporttest.RunRecordStore(t, func(t *testing.T) transports.RecordStore {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := Open(context.Background(), u, transports.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tr.Close() })
		return tr
	})
}

// openRecords opens a transport on an exchange of the test's own.
func openRecords(t *testing.T) *Transport {
	t.Helper()
	u, err := url.Parse(testURL(t, "", ""))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := Open(context.Background(), u, transports.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
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

func TestRecordsLogSnapshots(t *testing.T) {
	tr := openRecords(t)
	ctx := context.Background()
	const kind = "owners"
	for _, k := range []string{"a", "b"} {
		if err := tr.PutRecord(ctx, kind, k, []byte(k+"1")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tr.Records(ctx, kind); err != nil {
		t.Fatal(err)
	}
	snaps := snapshots(readLog(t, tr, kind, nil))
	if len(snaps) != 1 {
		t.Fatalf("%d snapshots after the first fold, want 1", len(snaps))
	}
	if got := snaps[0].op; string(got.Records["a"]) != "a1" || string(got.Records["b"]) != "b1" || len(got.Records) != 2 || got.Upto != 2 {
		t.Fatalf("snapshot = %+v, want a=a1 b=b1 up to offset 2", got)
	}

	// A recent snapshot is not taken again.
	if got, err := tr.ClaimRecord(ctx, kind, "a", []byte("late")); err != nil || string(got) != "a1" {
		t.Fatalf("ClaimRecord(a) = %q, %v; want the first value a1", got, err)
	}
	if err := tr.PutRecord(ctx, kind, "c", []byte("c1")); err != nil {
		t.Fatal(err)
	}
	if err := tr.DeleteRecord(ctx, kind, "b"); err != nil {
		t.Fatal(err)
	}
	recs, err := tr.Records(ctx, kind)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || string(recs["a"]) != "a1" || string(recs["c"]) != "c1" {
		t.Fatalf("Records = %q, want a=a1 c=c1", recs)
	}

	q := tr.RecordsQueue(kind)
	var fromSnap, afterSnap, pastEnd, first error
	var fromSnapRecs, firstRecs map[string][]byte
	entries := readLog(t, tr, kind, func(ch *amqp091.Channel, until string) {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		var end foldEnd
		// Starting at the snapshot, the fold takes it as its base.
		end, fromSnap = foldRecords(ctx, ch, q, until, foldStart{offset: snaps[0].offset})
		fromSnapRecs = end.records
		// Starting after it, nothing covers what the fold skipped.
		_, afterSnap = foldRecords(ctx, ch, q, until, foldStart{offset: snaps[0].offset + 1})
		// Starting after the log's end, the fold gives up.
		_, pastEnd = foldRecords(ctx, ch, q, until, foldStart{offset: time.Now().Add(time.Hour), wait: 300 * time.Millisecond})
		end, first = foldRecords(ctx, ch, q, until, fromFirstEntry)
		firstRecs = end.records
	})
	if n := len(snapshots(entries)); n != 1 {
		t.Fatalf("%d snapshots, want 1: a snapshot taken less than %v ago is not taken again", n, snapshotWindow/2)
	}
	if fromSnap != nil || !maps.EqualFunc(fromSnapRecs, recs, bytes.Equal) {
		t.Fatalf("fold from the snapshot = %q, %v; want %q", fromSnapRecs, fromSnap, recs)
	}
	if !errors.Is(afterSnap, errNoBase) {
		t.Fatalf("fold from after the snapshot: %v, want errNoBase", afterSnap)
	}
	if !errors.Is(pastEnd, errNoBase) {
		t.Fatalf("fold from past the end: %v, want errNoBase", pastEnd)
	}
	if first != nil || !maps.EqualFunc(firstRecs, recs, bytes.Equal) {
		t.Fatalf("fold from the first entry = %q, %v; want %q", firstRecs, first, recs)
	}
}
