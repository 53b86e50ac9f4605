package nats

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/busline/busline/transports"
)

var _ transports.Scheduler = (*Transport)(nil)

// Scheduled events on JetStream (nats-server 2.9: no message schedules,
// no per-message TTL).
//
// A scheduled event waits in one stream, "{prefix}_schedule", as a copy of
// the message Publish would send, on the subject
// "{prefix}._sched.{id}.{event}" ({id}: the event ID when it is made of
// letters, digits, '-' and '_', else '~' and its base64url), with its
// topic and due time in headers. The stream keeps one message per
// subject (MaxMsgsPerSubject 1): scheduling the same event ID again on
// the same event replaces it. Every change of a scheduled event is a
// publish on its subject conditional on the subject's last sequence
// (Nats-Expected-Last-Subject-Sequence), so that a move and a cancel
// exclude each other:
//
//   - cancel publishes a tombstone (state "cancelled") expecting the
//     scheduled message's sequence, then deletes the tombstone;
//   - a move publishes a marker (state "moving": the full message again,
//     with the mover's token) expecting that sequence, then publishes
//     the event to its stream with Nats-Msg-Id = event ID, then deletes
//     the marker. A mover that dies after the marker leaves it for the
//     next mover, which publishes again: JetStream's duplicate window
//     absorbs the second publish when the first went through.
//
// The subject "{prefix}._sched_lease" of the same stream holds the lease:
// the token of the transport that moves due events, renewed every
// scheduleRenew with a publish conditional on the lease's last sequence,
// and taken over by another transport once it saw no renewal for
// scheduleLease (see mover.go).
const (
	// HeaderScheduleTopic, HeaderScheduleDue (Unix milliseconds, rounded
	// up), HeaderScheduleState and HeaderScheduleMover are the headers of
	// a message of the schedule stream; they never reach an event stream.
	HeaderScheduleTopic = "busline-sched-topic"
	HeaderScheduleDue   = "busline-sched-due"
	HeaderScheduleState = "busline-sched-state"
	HeaderScheduleMover = "busline-sched-mover"

	// States of a message of the schedule stream; a scheduled event has
	// no state header.
	schedStateMoving    = "moving"
	schedStateCancelled = "cancelled"

	// cancelRounds bounds the lookups of one CancelScheduled (each round
	// cancels one copy, or sees a concurrent change and looks again).
	cancelRounds = 8
)

// rawIDRE is an event ID usable as a subject token as it is.
var rawIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,200}$`)

// ScheduleStream returns the stream of scheduled events: "{prefix}_schedule".
func (o Options) ScheduleStream() string { return o.Prefix + "_schedule" }

// scheduleRoot is the subject prefix of scheduled events, with its dot.
func (o Options) scheduleRoot() string { return o.Prefix + "._sched." }

// leaseSubject is the subject of the mover lease in the schedule stream.
func (o Options) leaseSubject() string { return o.Prefix + "._sched_lease" }

// idToken is the subject token of an event ID: the ID itself, or '~' and
// its base64url when it holds other characters ('~' is in no raw ID, so
// the mapping is one to one).
func idToken(id string) string {
	if rawIDRE.MatchString(id) {
		return id
	}
	return "~" + base64.RawURLEncoding.EncodeToString([]byte(id))
}

// scheduleSubject is the subject of event ID id scheduled on event.
func (o Options) scheduleSubject(event, id string) string {
	return o.scheduleRoot() + idToken(id) + "." + event
}

// splitScheduleSubject returns the ID token and the event of a subject of
// the schedule stream; ok is false for other subjects (the lease).
func (o Options) splitScheduleSubject(subject string) (tok, event string, ok bool) {
	rest, ok := strings.CutPrefix(subject, o.scheduleRoot())
	if !ok {
		return "", "", false
	}
	return strings.Cut(rest, ".")
}

// scheduleStreamConfig is the configuration of the schedule stream.
func (t *Transport) scheduleStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              t.opts.ScheduleStream(),
		Description:       "busline scheduled events",
		Subjects:          []string{t.opts.scheduleRoot() + ">", t.opts.leaseSubject()},
		Retention:         jetstream.LimitsPolicy,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		MaxConsumers:      -1,
		MaxMsgsPerSubject: 1,
		Discard:           jetstream.DiscardOld,
		Storage:           t.opts.Storage,
		Replicas:          t.opts.Replicas,
		AllowDirect:       true,
	}
}

// scheduleStream returns the schedule stream; with create, it is made when
// missing, else a missing stream returns nil and no error.
func (t *Transport) scheduleStream(ctx context.Context, create bool) (jetstream.Stream, error) {
	if s := t.sched.Load(); s != nil {
		return *s, nil
	}
	ctx, cancel := t.timeout(ctx)
	defer cancel()
	name := t.opts.ScheduleStream()
	s, err := t.js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if !create {
			return nil, nil
		}
		s, err = t.js.CreateStream(ctx, t.scheduleStreamConfig())
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = t.js.Stream(ctx, name)
		}
		if err == nil {
			t.mover.streamCreated()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("nats: stream %s: %w", name, err)
	}
	t.sched.Store(&s)
	return s, nil
}

// forgetScheduleStream makes the next scheduleStream ask the server again.
func (t *Transport) forgetScheduleStream() { t.sched.Store(nil) }

// Schedule implements transports.Scheduler: msg waits in the schedule
// stream until a mover appends it to the stream of topic, at due or
// later, never earlier. It returns once JetStream acknowledged the
// scheduled copy (stored; on a quorum with Replicas > 1). A due time not
// after now is a Publish; scheduling an event ID again on the same topic
// replaces the earlier copy at once, on another topic once the mover read
// the later one.
func (t *Transport) Schedule(ctx context.Context, topic string, due time.Time, msg *message.Message) error {
	if t.isClosed() {
		return transports.ErrClosed
	}
	if now, err := transports.DueNow(time.Now(), due); err != nil || now {
		if err != nil {
			return err
		}
		return t.Publish(topic, msg)
	}
	if err := checkEvent(topic); err != nil {
		return err
	}
	subject := t.opts.scheduleSubject(topic, msg.UUID)
	nm, err := encode(subject, msg)
	if err != nil {
		return err
	}
	// The schedule stream must accept the same event ID again: no
	// duplicate detection there. The move adds it back.
	nm.Header.Del(natsgo.MsgIdHdr)
	nm.Header.Set(HeaderScheduleTopic, topic)
	nm.Header.Set(HeaderScheduleDue, strconv.FormatInt(transports.DueMillis(due), 10))
	for range 2 {
		if _, err = t.scheduleStream(ctx, true); err != nil {
			return fmt.Errorf("nats: schedule %s on %s: %w", msg.UUID, topic, err)
		}
		pctx, cancel := t.timeout(ctx)
		_, err = t.js.PublishMsg(pctx, nm)
		cancel()
		if !errors.Is(err, jetstream.ErrNoStreamResponse) && !errors.Is(err, natsgo.ErrNoResponders) {
			break
		}
		t.forgetScheduleStream() // deleted under the transport: make it again, once
	}
	if err != nil {
		return fmt.Errorf("nats: schedule %s on %s: %w", msg.UUID, topic, err)
	}
	return nil
}

// CancelScheduled implements transports.Scheduler: it finds the event's
// subject (the last message of "{prefix}._sched.{id}.>") and publishes a
// tombstone on it conditional on the scheduled message's sequence, so
// that either the cancel or a move wins, never both: nil means no group
// gets the event. It returns an error wrapping transports.ErrNotScheduled
// when nothing waits under id, or when a mover took it first.
func (t *Transport) CancelScheduled(ctx context.Context, id string) error {
	if t.isClosed() {
		return transports.ErrClosed
	}
	s, err := t.scheduleStream(ctx, false)
	if err != nil {
		return fmt.Errorf("nats: cancel scheduled %s: %w", id, err)
	}
	if s == nil {
		return fmt.Errorf("nats: %w: %s", transports.ErrNotScheduled, id)
	}
	cancelled := false
	for range cancelRounds {
		gctx, cancel := t.timeout(ctx)
		m, err := s.GetLastMsgForSubject(gctx, t.opts.scheduleRoot()+idToken(id)+".>")
		cancel()
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			return t.cancelResult(id, cancelled)
		case err != nil:
			return fmt.Errorf("nats: cancel scheduled %s: %w", id, err)
		case first(m.Header, HeaderScheduleState) != "":
			// Moving, or the tombstone of a cancel.
			return t.cancelResult(id, cancelled)
		}
		ok, err := t.tombstone(ctx, s, m.Subject, m.Sequence)
		if err != nil {
			return fmt.Errorf("nats: cancel scheduled %s: %w", id, err)
		}
		// Not ok: moved or replaced meanwhile; look again. Ok: look for
		// a copy scheduled on another event under the same ID.
		cancelled = cancelled || ok
	}
	return t.cancelResult(id, cancelled)
}

func (t *Transport) cancelResult(id string, cancelled bool) error {
	if cancelled {
		return nil
	}
	return fmt.Errorf("nats: %w: %s", transports.ErrNotScheduled, id)
}

// tombstone replaces the scheduled message seq on subject with a
// tombstone, conditional on seq being the subject's last message, then
// deletes the tombstone (a tombstone left by a crash is deleted by the
// mover). It reports false when the subject changed meanwhile.
func (t *Transport) tombstone(ctx context.Context, s jetstream.Stream, subject string, seq uint64) (bool, error) {
	ctx, cancel := t.timeout(ctx)
	defer cancel()
	h := natsgo.Header{}
	h.Set(HeaderScheduleState, schedStateCancelled)
	ack, err := t.js.PublishMsg(ctx, &natsgo.Msg{Subject: subject, Header: h}, jetstream.WithExpectLastSequencePerSubject(seq))
	if wrongLastSequence(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := s.DeleteMsg(ctx, ack.Sequence); err != nil && !msgGone(err) {
		t.log.Debug("nats: cannot delete the tombstone of a cancelled event; the mover will", "subject", subject, "error", err)
	}
	return true, nil
}

// wrongLastSequence reports the refusal of a conditional publish.
func wrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// msgGone reports a get or delete of a message that is not there.
func msgGone(err error) bool {
	var apiErr *jetstream.APIError
	// A failed delete carries the server's error as text only
	// ("sequence N not found", err_code 10043).
	return errors.Is(err, jetstream.ErrMsgNotFound) || errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeMessageNotFound ||
		errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) && (strings.Contains(err.Error(), "not found") || strings.Contains(err.Error(), "err_code=10043"))
}

// Scheduled implements transports.Scheduler by reading the headers of
// every message of the schedule stream (an ordered consumer with
// HeadersOnly, one pass): its cost grows with the number of scheduled
// events. Events being moved count until their move ends; tombstones do
// not. Nothing is created.
func (t *Transport) Scheduled(ctx context.Context) ([]transports.ScheduledInfo, error) {
	if t.isClosed() {
		return nil, transports.ErrClosed
	}
	s, err := t.scheduleStream(ctx, false)
	if s == nil || err != nil {
		return []transports.ScheduledInfo{}, err
	}
	ctx, cancel := t.timeout(ctx)
	defer cancel()
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{t.opts.scheduleRoot() + ">"},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		HeadersOnly:    true,
	})
	if err != nil {
		return nil, fmt.Errorf("nats: scheduled events: %w", err)
	}
	type copyOf struct {
		seq   uint64
		event string
		due   time.Time
	}
	byID := map[string]copyOf{}
	for more := true; more; {
		batch, err := c.FetchNoWait(1000)
		if err != nil {
			return nil, fmt.Errorf("nats: scheduled events: %w", err)
		}
		n := 0
		more = false
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				continue
			}
			more = md.NumPending > 0
			tok, event, ok := t.opts.splitScheduleSubject(m.Subject())
			if !ok || m.Headers().Get(HeaderScheduleState) == schedStateCancelled {
				continue
			}
			ms, err := strconv.ParseInt(m.Headers().Get(HeaderScheduleDue), 10, 64)
			if err != nil {
				continue
			}
			if prev, ok := byID[tok]; !ok || prev.seq < md.Sequence.Stream {
				byID[tok] = copyOf{seq: md.Sequence.Stream, event: event, due: time.UnixMilli(ms)}
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, fmt.Errorf("nats: scheduled events: %w", err)
		}
		if n == 0 {
			break // nothing (left) to read
		}
	}
	tally := make(transports.ScheduledTally)
	for _, c := range byID {
		tally.Add(c.event, c.due)
	}
	return tally.List(), nil
}
