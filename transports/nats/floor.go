package nats

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The ack floor of a group's consumer, kept where a deleted consumer can
// be made again from.
//
// An operator may delete a group's consumer (or a server restarted
// without its store may lose it) while the group has processes. Made
// again at the start of the stream, it would deliver every retained event
// to the group again; made at the listeners' Since (by default the end of
// the stream), it would skip the events fired since the deletion. Every
// message up to the consumer's ack floor was acknowledged, so the
// consumer is made again just after it: the held-set writer of each
// subscription looks at the floor every floorEvery (one request), keeps
// it for recover, and records it in the record bucket, kind "floor", key
// "{stream}/{group}/floor", with the creation time of the stream it
// belongs to, for a process of the group that opens while the consumer
// is gone. A floor of another stream (deleted and made again: its
// sequences start over) is not used.

// kindFloor is the record kind of recorded ack floors.
const kindFloor = "floor"

// floorEvery is how often the held-set writer looks at the consumer's
// ack floor.
const floorEvery = 10 * time.Second

func (t *Transport) floorKey(topic, group string) string {
	return recordKeyOf(t.opts.StreamName(topic) + "/" + group + "/floor")
}

// lookAtFloor reads the consumer's ack floor, within heldTimeout, and
// records it when it moved; a failure is left to the reads to report. It
// runs on the held-set writer's goroutine, off the read path.
func (s *subscription) lookAtFloor(ctx context.Context) {
	s.mu.Lock()
	c := s.cons
	s.mu.Unlock()
	ictx, cancel := context.WithTimeout(ctx, heldTimeout)
	defer cancel()
	info, err := c.Info(ictx)
	if err != nil {
		return
	}
	s.noteFloor(c, info)
	s.mu.Lock()
	floor, created, written := s.floor, s.floorCreated, s.floorWritten
	s.mu.Unlock()
	if floor == written || created.IsZero() {
		return
	}
	value := fmt.Sprintf("%d %d", created.UnixNano(), floor)
	if s.t.PutRecord(ictx, kindFloor, s.t.floorKey(s.topic, s.group), []byte(value)) == nil {
		s.mu.Lock()
		s.floorWritten = max(s.floorWritten, floor)
		s.mu.Unlock()
	}
}

// noteFloor keeps the ack floor of info, the info of consumer c, while c
// is still the subscription's consumer; the floor only moves forward.
func (s *subscription) noteFloor(c jetstream.Consumer, info *jetstream.ConsumerInfo) {
	if info == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cons == c {
		s.floor = max(s.floor, info.AckFloor.Stream)
	}
}

// recordedFloor returns the ack floor recorded for group on the stream of
// topic, when it belongs to the stream as it is now (0 otherwise, or when
// it cannot be read: the consumer is then made at its listeners' Since).
func (t *Transport) recordedFloor(ctx context.Context, topic, group string) uint64 {
	var raw []byte
	err := t.onBucket(ctx, false, func(ctx context.Context, kv jetstream.KeyValue) error {
		e, err := kv.Get(ctx, recordKey(kindFloor, t.floorKey(topic, group)))
		if err == nil {
			raw = e.Value()
		}
		return err
	})
	if err != nil || raw == nil {
		return 0
	}
	var createdNano int64
	var floor uint64
	if _, err := fmt.Sscanf(string(raw), "%d %d", &createdNano, &floor); err != nil {
		return 0
	}
	ictx, cancel := t.timeout(ctx)
	defer cancel()
	st, err := t.js.Stream(ictx, t.opts.StreamName(topic))
	if err != nil {
		return 0
	}
	info := st.CachedInfo()
	if info.Created.UnixNano() != createdNano || floor > info.State.LastSeq {
		return 0 // another stream, or one whose sequences went back
	}
	return floor
}
