package amqp

import (
	"maps"
	"testing"
)

func put(k, v string) recordOp   { return recordOp{Op: "put", Key: k, Value: []byte(v)} }
func claim(k, v string) recordOp { return recordOp{Op: "claim", Key: k, Value: []byte(v)} }
func del(k string) recordOp      { return recordOp{Op: "delete", Key: k} }

func snapshot(upto int64, kv ...string) recordOp {
	recs := map[string][]byte{}
	for i := 0; i+1 < len(kv); i += 2 {
		recs[kv[i]] = []byte(kv[i+1])
	}
	return recordOp{Op: "snapshot", Records: recs, Upto: upto}
}

func foldOps(first int64, ops ...recordOp) *folder {
	f := newFolder()
	for i, op := range ops {
		f.add(first+int64(i), op)
	}
	return f
}

// wantRecords checks the fold's records and the offset its base covers.
func wantRecords(t *testing.T, f *folder, base int64, kv ...string) {
	t.Helper()
	got, gotBase, ok := f.result()
	if !ok {
		t.Fatalf("the fold has no base, want %v", kv)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		want[kv[i]] = kv[i+1]
	}
	gotS := map[string]string{}
	for k, v := range got {
		gotS[k] = string(v)
	}
	if !maps.Equal(gotS, want) {
		t.Fatalf("records = %v, want %v", gotS, want)
	}
	if gotBase != base {
		t.Fatalf("base = %d, want %d", gotBase, base)
	}
}

func TestFoldFromTheFirstEntry(t *testing.T) {
	f := foldOps(0, put("a", "1"), claim("a", "2"), claim("b", "3"), put("c", "4"), del("c"), recordOp{Op: "sync"})
	wantRecords(t, f, -1, "a", "1", "b", "3")
}

func TestFoldTakesACoveringSnapshotAsItsBase(t *testing.T) {
	// The fold starts at offset 10. The snapshot at 13 covers up to 11:
	// the entry at 10 is in it, the one at 12 is applied after it (a
	// claim of a key the snapshot holds changes nothing), then the rest.
	f := foldOps(10,
		put("a", "old"),
		put("b", "2"),
		claim("a", "late"),
		snapshot(11, "a", "1", "b", "2"),
		put("c", "3"),
		del("b"),
	)
	wantRecords(t, f, 11, "a", "1", "c", "3")
}

func TestFoldAppliesHeldEntriesAfterTheSnapshotsOffset(t *testing.T) {
	// Entries at 20 and 21 were written after the snapshot's fold read
	// its own entry (19) and before the snapshot landed at 22.
	f := foldOps(19, recordOp{Op: "sync"}, put("x", "1"), del("a"), snapshot(19, "a", "1"), claim("x", "2"))
	wantRecords(t, f, 19, "x", "1")
}

func TestFoldRefusesASnapshotThatLeavesAGap(t *testing.T) {
	// The fold starts at 10; a snapshot up to 8 misses the entry at 9.
	f := foldOps(10, put("a", "1"), snapshot(8, "b", "2"), put("c", "3"))
	if recs, _, ok := f.result(); ok {
		t.Fatalf("the fold took a snapshot that misses entry 9: %v", recs)
	}
}

func TestFoldRefusesASnapshotOfLaterEntries(t *testing.T) {
	f := foldOps(10, put("a", "1"), snapshot(11, "b", "2"))
	if recs, _, ok := f.result(); ok {
		t.Fatalf("the fold took a snapshot claiming to cover itself: %v", recs)
	}
}

func TestFoldKeepsItsBaseAtALaterSnapshot(t *testing.T) {
	// A later snapshot agrees with the fold (it is one): only the offset
	// its base covers moves. Here it is made up to disagree, to show its
	// records are not read.
	f := foldOps(0, put("a", "1"), snapshot(0, "a", "1"), put("b", "2"), snapshot(2, "z", "9"))
	wantRecords(t, f, 2, "a", "1", "b", "2")
}

func TestFoldWithoutBaseHoldsEverything(t *testing.T) {
	f := foldOps(5, put("a", "1"), del("a"), put("b", "2"))
	if _, _, ok := f.result(); ok {
		t.Fatal("a fold that started at 5 with no snapshot has a base")
	}
	if len(f.held) != 3 {
		t.Fatalf("held %d entries, want 3", len(f.held))
	}
}
