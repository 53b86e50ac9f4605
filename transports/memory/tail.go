package memory

import (
	"context"
	"strconv"

	"github.com/busline/busline/transports"
)

var _ transports.Tailer = (*Transport)(nil)

// Tail implements transports.Tailer: it reads the stream of topic from the
// position opts.Since names (the default: the next entry) and follows it,
// waking on broker changes rather than polling. It joins no group. Entries
// trimmed before Tail read them are skipped.
func (t *Transport) Tail(ctx context.Context, topic string, opts transports.TailOptions, fn func(transports.TailedEvent) error) error {
	b := t.broker
	next := b.tailStart(topic, opts.Since)
	if opts.Ready != nil {
		opts.Ready()
	}
	for {
		changed := b.Changed()
		batch, after := b.tailRead(topic, next, 256)
		next = after
		for _, ev := range batch {
			if err := fn(ev); err != nil {
				return err
			}
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// tailStart returns the sequence number of the first entry to read.
func (b *Broker) tailStart(topic string, since transports.Since) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.streams[topic]
	if s == nil {
		return 1 // a new stream starts at 1
	}
	if at, ok := since.Time(); ok {
		return s.first + uint64(s.search(at))
	}
	if since.IsBeginning() {
		return s.first
	}
	return s.next
}

// tailRead copies up to limit entries of topic from sequence number next
// and returns them with the sequence number that follows.
func (b *Broker) tailRead(topic string, next uint64, limit int) ([]transports.TailedEvent, uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.streams[topic]
	if s == nil {
		return nil, next
	}
	next = max(next, s.first)
	var out []transports.TailedEvent
	for ; next < s.next && len(out) < limit; next++ {
		e, _ := s.get(next)
		out = append(out, transports.TailedEvent{
			Topic: topic, Position: strconv.FormatUint(e.seq, 10), At: e.at, Message: e.msg.message(),
		})
	}
	return out, next
}
