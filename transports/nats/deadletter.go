package nats

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/busline/busline/transports"
)

// ErrDeadLetterNotFound is returned by ReplayDeadLetter for an ID that is
// not in the group's dead letters.
var ErrDeadLetterNotFound = fmt.Errorf("nats: dead letter %w", transports.ErrNotFound)

// DeadLetter publishes msg on the dead-letter subject of group,
// "{prefix}._dead.{group}" in the stream "{prefix}_dead", with the
// original headers plus the reason, attempts, time, group and event in
// busline-dead-* headers, and returns once JetStream stored it.
func (t *Transport) DeadLetter(ctx context.Context, group string, msg *message.Message, reason string, attempts int) error {
	if t.isClosed() {
		return transports.ErrClosed
	}
	if _, err := t.ensureDeadStream(ctx); err != nil {
		return err
	}
	topic := msg.Metadata.Get("ce-type")
	if info := transports.DeliveryInfoFrom(msg.Context()); info != nil && info.Topic != "" {
		topic = info.Topic
	}
	clean := msg.Copy()
	for k := range clean.Metadata {
		if reservedHeader(k) {
			delete(clean.Metadata, k)
		}
	}
	nm, err := encode(t.opts.DeadSubject(group), clean)
	if err != nil {
		return err
	}
	// A dead letter is its own message: the same event dead-lettered
	// again (after a replay) must not be dropped as a duplicate.
	nm.Header[natsgo.MsgIdHdr] = []string{watermill.NewUUID()}
	nm.Header[HeaderDeadReason] = []string{reason}
	nm.Header[HeaderDeadAttempts] = []string{strconv.Itoa(attempts)}
	nm.Header[HeaderDeadAt] = []string{time.Now().UTC().Format(time.RFC3339Nano)}
	nm.Header[HeaderDeadGroup] = []string{group}
	nm.Header[HeaderDeadTopic] = []string{topic}
	ctx, cancel := t.timeout(ctx)
	defer cancel()
	if _, err := t.js.PublishMsg(ctx, nm); err != nil {
		return fmt.Errorf("nats: dead-letter %s of %s: %w", msg.UUID, group, err)
	}
	return nil
}

// DeadLetters lists up to limit dead letters of group, oldest first
// (limit <= 0: all). The ID of a dead letter is its sequence number in
// the dead-letter stream.
func (t *Transport) DeadLetters(ctx context.Context, group string, limit int) ([]transports.DeadLetter, error) {
	if t.isClosed() {
		return nil, transports.ErrClosed
	}
	if err := checkDeadGroup(group); err != nil {
		return nil, err
	}
	s, err := t.deadStream(ctx)
	if s == nil || err != nil {
		return nil, err
	}
	subject := t.opts.DeadSubject(group)
	var out []transports.DeadLetter
	for seq := uint64(1); limit <= 0 || len(out) < limit; {
		m, err := t.getMsg(ctx, s, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("nats: read dead letters of %s: %w", group, err)
		}
		out = append(out, toDeadLetter(group, m))
		seq = m.Sequence + 1
	}
	return out, nil
}

// ReplayDeadLetter publishes the dead letter id of group back on its
// event's subject with the original event ID, marked with the
// busline-replay-group header so that only group handles it (the other
// groups acknowledge it unseen), then deletes it from the dead-letter
// stream. A replayed message reaches group as a first delivery (attempt 1).
func (t *Transport) ReplayDeadLetter(ctx context.Context, group, id string) error {
	if t.isClosed() {
		return transports.ErrClosed
	}
	if err := checkDeadGroup(group); err != nil {
		return err
	}
	seq, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q in group %s (want a sequence number)", ErrDeadLetterNotFound, id, group)
	}
	s, err := t.deadStream(ctx)
	if err != nil {
		return err
	}
	if s == nil {
		return fmt.Errorf("%w: %s in group %s", ErrDeadLetterNotFound, id, group)
	}
	m, err := t.getMsg(ctx, s, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) || (err == nil && m.Subject != t.opts.DeadSubject(group)) {
		return fmt.Errorf("%w: %s in group %s", ErrDeadLetterNotFound, id, group)
	}
	if err != nil {
		return fmt.Errorf("nats: read dead letter %s of %s: %w", id, group, err)
	}
	dl := toDeadLetter(group, m)
	if dl.Topic == "" {
		return fmt.Errorf("nats: dead letter %s of %s names no event", id, group)
	}
	cctx, ccancel := t.timeout(ctx)
	_, err = t.js.Consumer(cctx, t.opts.StreamName(dl.Topic), ConsumerName(group))
	ccancel()
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrStreamNotFound):
		return transports.GroupNotReading("nats", group, dl.Topic)
	case err != nil:
		return fmt.Errorf("nats: replay dead letter %s of %s: %w", id, group, err)
	}
	h := natsgo.Header{}
	for k, vs := range m.Header {
		if k == natsgo.MsgIdHdr || k == HeaderReplayGroup || strings.HasPrefix(k, "busline-dead-") {
			continue
		}
		h[k] = vs
	}
	h[HeaderReplayGroup] = []string{group}
	// Not the event ID: the replay must pass JetStream's duplicate window.
	h[natsgo.MsgIdHdr] = []string{dl.Message.UUID + ":replay:" + group + ":" + id}
	rctx, cancel := t.timeout(ctx)
	defer cancel()
	if _, err := t.js.PublishMsg(rctx, &natsgo.Msg{Subject: t.opts.Subject(dl.Topic), Header: h, Data: m.Data}); err != nil {
		return fmt.Errorf("nats: replay dead letter %s of %s: %w", id, group, err)
	}
	if err := s.DeleteMsg(rctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("nats: remove replayed dead letter %s of %s: %w", id, group, err)
	}
	return nil
}

// PurgeDeadLetters removes every dead letter of group and returns how many.
func (t *Transport) PurgeDeadLetters(ctx context.Context, group string) (int, error) {
	if t.isClosed() {
		return 0, transports.ErrClosed
	}
	if err := checkDeadGroup(group); err != nil {
		return 0, err
	}
	s, err := t.deadStream(ctx)
	if s == nil || err != nil {
		return 0, err
	}
	counts, err := t.deadCounts(ctx, s, t.opts.DeadSubject(group))
	if err != nil {
		return 0, err
	}
	n := counts[t.opts.DeadSubject(group)]
	if n == 0 {
		return 0, nil
	}
	ctx, cancel := t.timeout(ctx)
	defer cancel()
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(t.opts.DeadSubject(group))); err != nil {
		return 0, fmt.Errorf("nats: purge dead letters of %s: %w", group, err)
	}
	return int(n), nil
}

// deadStream returns the dead-letter stream, or nil when it does not
// exist (no dead letter was ever written under the prefix).
func (t *Transport) deadStream(ctx context.Context) (jetstream.Stream, error) {
	ctx, cancel := t.timeout(ctx)
	defer cancel()
	s, err := t.js.Stream(ctx, t.opts.DeadStream())
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("nats: stream %s: %w", t.opts.DeadStream(), err)
	}
	return s, nil
}

// deadCounts returns the number of dead letters per subject matching filter.
func (t *Transport) deadCounts(ctx context.Context, s jetstream.Stream, filter string) (map[string]uint64, error) {
	ctx, cancel := t.timeout(ctx)
	defer cancel()
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, fmt.Errorf("nats: count dead letters: %w", err)
	}
	return info.State.Subjects, nil
}

func (t *Transport) getMsg(ctx context.Context, s jetstream.Stream, seq uint64, opts ...jetstream.GetMsgOpt) (*jetstream.RawStreamMsg, error) {
	ctx, cancel := t.timeout(ctx)
	defer cancel()
	return s.GetMsg(ctx, seq, opts...)
}

// toDeadLetter reads a message of the dead-letter stream.
func toDeadLetter(group string, m *jetstream.RawStreamMsg) transports.DeadLetter {
	msg, _ := decode(m.Header, m.Data)
	attempts, _ := strconv.Atoi(first(m.Header, HeaderDeadAttempts))
	at, _ := time.Parse(time.RFC3339Nano, first(m.Header, HeaderDeadAt))
	if g := first(m.Header, HeaderDeadGroup); g != "" {
		group = g
	}
	return transports.DeadLetter{
		ID:       strconv.FormatUint(m.Sequence, 10),
		Group:    group,
		Reason:   first(m.Header, HeaderDeadReason),
		Attempts: attempts,
		DeadAt:   at,
		Topic:    first(m.Header, HeaderDeadTopic),
		Message:  msg,
	}
}
