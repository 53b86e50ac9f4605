package amqp

import "maps"

// A records log only grows, so a fold does not read it from its first
// entry every time. A fold whose base lies more than snapshotEvery entries
// before its own entry appends a snapshot: every record as the fold found
// it, and the offset of the fold's own entry (Upto); folds running at the
// same moment may each append one. A later fold starts readBack entries
// before the log's last chunk (as a consumer attached there just before
// the fold's own entry was appended sees it, so the entry lies after the
// start) and takes the first snapshot it meets that covers every entry
// before the first one it read as its base; it applies the entries after Upto that it held, then the
// rest in order. The result is what a fold from the first entry gives,
// because a snapshot is such a fold (or one made from an earlier snapshot
// the same way). A fold that meets no such snapshot before its own entry
// reads the log again from the first entry. A log shorter than readBack
// is always read whole, and gets no snapshot until it is longer than
// snapshotEvery. Readers that know no snapshots skip them as unknown
// operations.

const (
	// snapshotEvery is how many entries past its base a fold reads before
	// it appends a snapshot.
	snapshotEvery = 500
	// readBack is how many entries before the log's last chunk a fold
	// starts: twice snapshotEvery, so that the latest snapshot is among
	// them unless many entries came with no fold between them.
	readBack = 2 * snapshotEvery
)

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
	base    int64 // the last offset the base covers: -1 for the log's start
	first   int64 // offset of the first entry read, -1 before any
	held    []heldOp
}

func newFolder() *folder { return &folder{first: -1} }

// add applies the entry at offset.
func (f *folder) add(offset int64, op recordOp) {
	if f.first < 0 {
		f.first = offset
		if offset == 0 {
			f.records, f.base = map[string][]byte{}, -1
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
// one read. A snapshot met after the base agrees with it: it becomes the
// base only in name (base), so that the next snapshot counts from it.
func (f *folder) addSnapshot(offset int64, op recordOp) {
	if op.Upto >= offset {
		return // not a snapshot of entries before it
	}
	if f.records != nil {
		f.base = max(f.base, op.Upto)
		return
	}
	if op.Upto+1 < f.first {
		return // it does not cover what came before this fold's first entry
	}
	f.records, f.base = maps.Clone(op.Records), op.Upto
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

// result returns the records and the last offset their base covers, and
// false when the fold has no base: it started after the log's first entry
// and met no snapshot covering what it skipped.
func (f *folder) result() (map[string][]byte, int64, bool) {
	return f.records, f.base, f.records != nil
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
