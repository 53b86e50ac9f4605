package memory

import (
	"testing"
	"time"
)

func TestStreamBlocks(t *testing.T) {
	s := &stream{first: 1, next: 1}
	t0 := time.Unix(1000, 0)
	const n = 3*blockSize + 7
	for i := range n {
		s.push(stored{uuid: "m"}, t0.Add(time.Duration(i)*time.Second), "")
	}
	if s.length() != n {
		t.Fatalf("length %d, want %d", s.length(), n)
	}
	for _, drop := range []int{1, blockSize - 1, blockSize + 3, 5} {
		s.trim(drop)
	}
	kept := n - (1 + blockSize - 1 + blockSize + 3 + 5)
	if s.length() != kept || s.first != uint64(n-kept+1) {
		t.Fatalf("after trim: length %d first %d, want %d and %d", s.length(), s.first, kept, n-kept+1)
	}
	for seq := s.first; seq < s.next; seq++ {
		e, ok := s.get(seq)
		if !ok || e.seq != seq || !e.at.Equal(t0.Add(time.Duration(seq-1)*time.Second)) {
			t.Fatalf("get(%d) = %+v, %v", seq, e, ok)
		}
	}
	if _, ok := s.get(s.first - 1); ok {
		t.Fatal("trimmed entry still readable")
	}
	if i := s.search(t0.Add(time.Duration(s.first+9) * time.Second)); i != 10 {
		t.Fatalf("search = %d, want 10", i)
	}
	if i := s.search(t0); i != 0 {
		t.Fatalf("search before the first = %d, want 0", i)
	}
	if i := s.search(t0.Add(time.Hour * 24)); i != s.length() {
		t.Fatalf("search after the last = %d, want %d", i, s.length())
	}
	s.trim(s.length() + 10)
	if s.length() != 0 || s.first != s.next {
		t.Fatalf("after trimming everything: length %d first %d next %d", s.length(), s.first, s.next)
	}
	s.push(stored{uuid: "again"}, t0, "")
	if e, ok := s.get(s.next - 1); !ok || e.msg.uuid != "again" {
		t.Fatalf("push after emptying: %+v %v", e, ok)
	}
	if len(s.blocks) > 2 {
		t.Fatalf("%d blocks kept for one entry", len(s.blocks))
	}
}
