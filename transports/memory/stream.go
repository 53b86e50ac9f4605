package memory

import (
	"sort"
	"time"
)

// blockSize is the number of entries per block of a stream: appending
// fills the last block and never copies the entries already there, and
// trimming drops whole blocks from the front.
const blockSize = 512

type stream struct {
	name   string
	blocks [][]entry // the first live entry is blocks[0][off]; every block but the last is full
	off    int
	first  uint64 // seq of the oldest retained entry
	next   uint64 // seq of the next entry
	groups map[string]*group
	// changed is closed and replaced when entries are appended, once a
	// blocked reader took it (XREADGROUP ... BLOCK).
	changed chan struct{}
}

// watch returns a channel closed at the next append.
func (s *stream) watch() <-chan struct{} {
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return s.changed
}

// wake wakes the readers blocked on the stream.
func (s *stream) wake() {
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
}

// length is the number of retained entries.
func (s *stream) length() int { return int(s.next - s.first) }

// get returns the entry with sequence number seq, if retained.
func (s *stream) get(seq uint64) (entry, bool) {
	if seq < s.first || seq >= s.next {
		return entry{}, false
	}
	return s.at(int(seq - s.first)), true
}

// at returns the i-th retained entry, oldest first.
func (s *stream) at(i int) entry {
	i += s.off
	return s.blocks[i/blockSize][i%blockSize]
}

// push appends an entry with the next sequence number.
func (s *stream) push(msg stored, at time.Time, replayGroup string) {
	if n := len(s.blocks); n == 0 || len(s.blocks[n-1]) == blockSize {
		s.blocks = append(s.blocks, make([]entry, 0, blockSize))
	}
	last := &s.blocks[len(s.blocks)-1]
	*last = append(*last, entry{seq: s.next, msg: msg, at: at, replayGroup: replayGroup})
	s.next++
}

// trim drops the n oldest entries, letting the collector have them.
func (s *stream) trim(n int) {
	n = min(n, s.length())
	for ; n > 0; n-- {
		s.blocks[0][s.off] = entry{}
		s.off++
		s.first++
		if s.off == blockSize {
			s.blocks[0] = nil
			s.blocks = s.blocks[1:]
			s.off = 0
		}
	}
}

// search returns the position (0..length) of the first entry at or after t.
func (s *stream) search(t time.Time) int {
	return sort.Search(s.length(), func(i int) bool { return !s.at(i).at.Before(t) })
}
