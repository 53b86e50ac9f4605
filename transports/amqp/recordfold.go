package amqp

import (
	"maps"
	"time"
)

// A records log only grows, so a fold does not read it from its first
// entry every time. Now and then a fold appends a snapshot: every record
// as the fold found it, and the offset of the last entry that fold read
// (Upto). A later fold starts reading at a timestamp (snapshotWindow ago)
// and takes the first snapshot it meets that covers every entry before
// the first one it read; it then applies the entries after Upto that it
// held, and the rest in order. The result is what a fold from the first
// entry gives, because a snapshot is such a fold (or one made from an
// earlier snapshot the same way). A fold that meets no such snapshot
// before its own entry reads the log again from the first entry.
// Readers that know no snapshots skip them as unknown operations.

// snapshotWindow is how far back a fold starts reading; a fold appends a
// snapshot when the latest one it saw was taken more than half of it ago.
const snapshotWindow = 24 * time.Hour

// heldOp is an entry read before the fold had a base to apply it to.
type heldOp struct {
	offset int64
	op     recordOp
}

// folder applies the entries of a records log in log order.
type folder struct {
	// records is nil until the fold has a base: the log's first entry
	// (offset 0) or a snapshot that covers everything before first.
	records map[string][]byte
	first   int64 // offset of the first entry read, -1 before any
	held    []heldOp
	// snapshotAt is when the latest snapshot the fold used or met was
	// taken; zero when it met none.
	snapshotAt time.Time
}

func newFolder() *folder { return &folder{first: -1} }

// add applies the entry at offset.
func (f *folder) add(offset int64, op recordOp) {
	if f.first < 0 {
		f.first = offset
		if offset == 0 {
			f.records = map[string][]byte{}
		}
	}
	if op.Op == "snapshot" {
		f.addSnapshot(offset, op)
		return
	}
	if f.records == nil {
		f.held = append(f.held, heldOp{offset: offset, op: op})
		return
	}
	applyRecordOp(f.records, op)
}

// addSnapshot takes the snapshot at offset as the fold's base when the
// fold has none yet and the snapshot covers every entry before the first
// one read. A snapshot met after the base agrees with it and only
// updates snapshotAt.
func (f *folder) addSnapshot(offset int64, op recordOp) {
	if f.records == nil {
		if op.Upto+1 < f.first || op.Upto >= offset {
			return // it does not cover what came before this fold's first entry
		}
		f.records = maps.Clone(op.Records)
		if f.records == nil {
			f.records = map[string][]byte{}
		}
		for _, h := range f.held {
			if h.offset > op.Upto {
				applyRecordOp(f.records, h.op)
			}
		}
		f.held = nil
	}
	if op.At.After(f.snapshotAt) {
		f.snapshotAt = op.At
	}
}

// result returns the records, and false when the fold has no base: it
// started after the log's first entry and met no snapshot covering what
// it skipped.
func (f *folder) result() (map[string][]byte, bool) {
	return f.records, f.records != nil
}

// applyRecordOp applies one put, claim or delete to records; other
// operations change nothing.
func applyRecordOp(records map[string][]byte, op recordOp) {
	switch op.Op {
	case "put":
		records[op.Key] = op.Value
	case "claim":
		if _, taken := records[op.Key]; !taken {
			records[op.Key] = op.Value
		}
	case "delete":
		delete(records, op.Key)
	}
}
