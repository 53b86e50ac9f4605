package nats

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/driver"
)

var _ driver.Driver = (*Transport)(nil)

// delivery is the AckID of one JetStream delivery.
type delivery struct {
	msg jetstream.Msg
	// seq is the stream sequence of the message.
	seq uint64
	// delivered is JetStream's delivery count of this delivery (1 on the first).
	delivered uint64
	// corrected is set when an attempt correction was read for it, so
	// that Ack deletes it.
	corrected bool
}

// Open joins consumer group cfg.Group on topic: it makes sure the event
// stream and the group's durable pull consumer exist (created at
// cfg.Since, AckWait = cfg.AckTimeout, at most Options.MaxAckWait) and
// returns a subscription that reads from it as one of the group's
// processes. It first returns to the group what an earlier process of
// the same name held when it died (see held.go).
func (t *Transport) Open(ctx context.Context, topic string, cfg transports.SubscriberConfig) (driver.Subscription, error) {
	if t.isClosed() {
		return nil, transports.ErrClosed
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkGroup(cfg.Group); err != nil {
		return nil, err
	}
	ackWait := min(cfg.AckTimeout, t.opts.MaxAckWait)
	c, err := t.ensureConsumer(ctx, topic, cfg.Group, ackWait, cfg.Since, 0)
	if err != nil {
		return nil, err
	}
	created, err := t.streamCreatedNow(ctx, topic)
	if err != nil {
		return nil, err
	}
	if info := c.CachedInfo(); info != nil && info.Config.AckWait > 0 && info.Config.AckWait < ackWait {
		// Lowered by hand (nats consumer edit): keep messages alive within
		// what the server applies.
		ackWait = info.Config.AckWait
	}
	s := &subscription{t: t, topic: topic, group: cfg.Group, consumer: cfg.Consumer, ackWait: ackWait, cons: c, streamCreated: created}
	s.life, s.endLife = context.WithCancel(context.Background())
	s.noteFloor(c, c.CachedInfo())
	if err := s.returnEarlierHeld(ctx); err != nil {
		t.log.Warn("nats: cannot return what this process name held before; it waits for AckTimeout",
			"group", cfg.Group, "process", cfg.Consumer, "error", err)
	}
	s.startHeldWriter()
	return s, nil
}

// subscription reads one group's durable pull consumer.
//
// JetStream keeps the unacknowledged messages of a consumer itself, for
// the consumer as a whole, not per process: the server redelivers a
// message after AckWait (or after the delay of a NakWithDelay) to whichever
// process pulls next. So there is no pending list per member to read or
// claim from: Pending and Claim return nothing, redeliveries (and their
// delays) come through Receive, Nack is NakWithDelay, and Close naks
// whatever the subscription still holds so that the group gets it again
// at once.
//
// The subscription reports its AckWait (Capabilities), and the engine
// calls KeepAlive, an in-progress ack (+WPI, which restarts AckWait), for
// every message it holds at least three times within it, so that a
// handler that runs longer than AckTimeout keeps its message.
//
// The subscription keeps the set of deliveries it holds (received,
// neither acked nor nacked): a writer of its own records it on the server
// after each read (held.go), and Close naks what is still in it, so that
// the group gets it again at once.
type subscription struct {
	t        *Transport
	topic    string
	group    string
	consumer string // the process name
	ackWait  time.Duration

	// cons is the group's consumer; only the reading goroutine replaces
	// it (see recover), under mu, which the held-set writer takes to read
	// it.
	cons jetstream.Consumer
	// streamCreated is when the stream the subscription reads was
	// created; the reading goroutine alone uses it (recover).
	streamCreated time.Time

	mu     sync.Mutex
	held   map[*delivery]struct{} // received and neither acked nor nacked
	closed bool
	// floor is cons's ack floor (every message up to that stream
	// sequence is acknowledged) when the held-set writer last looked
	// (every floorEvery): where recover makes a deleted consumer again.
	// floorOf is the creation time of the consumer it was read from:
	// another process may have made the consumer again, lower.
	floor   uint64
	floorOf time.Time

	// life ends at Close; reads counts the waiting reads' goroutines,
	// which run within it; lingering is the pull request an ended read
	// left behind, while it waits (see waitingRead; under mu).
	life      context.Context
	endLife   context.CancelFunc
	reads     sync.WaitGroup
	lingering *waitingRead

	// The held-set writer (held.go): woken by heldDirty, stopped at Close.
	heldDirty  chan struct{}
	writerStop context.CancelFunc
	writerDone chan struct{}
}

// Capabilities: no pending list per member, and the consumer's AckWait,
// within which the engine keeps held messages alive (see subscription).
func (s *subscription) Capabilities() driver.Capabilities {
	return driver.Capabilities{PendingList: false, AckWait: s.ackWait}
}

// Receive returns what the consumer has for the group now, up to max
// (one pull request that does not wait); when nothing is there it waits
// up to wait for one message with a pull request of batch 1, so that no
// request stays open on the server for messages nobody will read.
func (s *subscription) Receive(ctx context.Context, max int, wait time.Duration) ([]*driver.Message, error) {
	if s.isClosed() {
		return nil, transports.ErrClosed
	}
	for {
		out, skipped, err := s.fetch(ctx, max, 0)
		if err != nil || len(out) > 0 {
			return s.handOut(ctx, out, err)
		}
		if skipped > 0 {
			continue // only replays for other groups: there may be more
		}
		if wait <= 0 {
			return nil, nil
		}
		// Nothing now: wait for the first one.
		out, _, err = s.fetch(ctx, 1, wait)
		return s.handOut(ctx, out, err)
	}
}

// handOut has the held-set writer record what the subscription holds
// (see held.go) as the engine hands a read out.
func (s *subscription) handOut(_ context.Context, out []*driver.Message, err error) ([]*driver.Message, error) {
	if len(out) > 0 {
		s.heldChanged()
	}
	return out, err
}

// fetch pulls up to max messages, waiting up to wait (0: not at all).
// Messages replayed for another group are acknowledged and dropped; it
// returns how many.
func (s *subscription) fetch(ctx context.Context, max int, wait time.Duration) (out []*driver.Message, skipped int, err error) {
	if !s.t.nc.IsConnected() {
		// nats.go leaves behind the inbox subscription of a pull request it
		// could not send (one per read, kept for the life of the
		// connection): while the connection is down, a read fails here.
		return nil, 0, s.readErr(ctx, natsgo.ErrDisconnected)
	}
	var msgs []jetstream.Msg
	var batchErr error
	t0 := time.Now()
	if wait <= 0 {
		var batch jetstream.MessageBatch
		if batch, err = s.cons.FetchNoWait(max); err == nil {
			msgs, batchErr = drain(batch)
		}
	} else {
		msgs, batchErr, err = s.waitFor(ctx, s.cons, max, wait)
	}
	if err != nil {
		return nil, 0, s.recover(ctx, s.readErr(ctx, err))
	}
	// What was read is handed out even when ctx ended meanwhile (the
	// engine keeps what an interrupted read returns): its attempt
	// corrections and the acks of replays for other groups must not fail
	// with ctx.
	mctx := context.WithoutCancel(ctx)
	var skip []*delivery
	for _, m := range msgs {
		d, dm := s.toMessage(mctx, m)
		if d == nil {
			continue
		}
		if dm == nil {
			skip = append(skip, d)
			continue
		}
		s.hold(d)
		out = append(out, dm)
	}
	if len(skip) > 0 {
		_ = s.ack(mctx, skip)
	}
	if err := batchErr; err != nil && !errors.Is(err, context.DeadlineExceeded) {
		if len(out) > 0 {
			return out, len(skip), nil // the next read reports it
		}
		return nil, len(skip), s.recover(ctx, s.readErr(ctx, err))
	}
	if wait <= 0 && len(out)+len(skip) == 0 && time.Since(t0) >= noReply {
		// The server answers a pull request that does not wait at once
		// (messages or "no messages"); it does not answer at all for a
		// consumer that does not exist, and nats.go gives up after a second.
		// A slow server that still has the consumer is an empty read.
		if s.consumerGone(ctx) {
			return nil, 0, s.recover(ctx, fmt.Errorf("nats: no reply to a pull request of %s on %s", ConsumerName(s.group), s.t.opts.StreamName(s.topic)))
		}
	}
	return out, len(skip), nil
}

// consumerGone reports whether the server says the group's consumer (or
// its stream) does not exist.
func (s *subscription) consumerGone(ctx context.Context) bool {
	ictx, cancel := s.t.timeout(ctx)
	defer cancel()
	_, err := s.cons.Info(ictx)
	return errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound)
}

// floorEvery is how often the held-set writer looks at the consumer's
// ack floor (one request), for recover.
const floorEvery = 10 * time.Second

// lookAtFloor reads the consumer's ack floor, within heldTimeout; a
// failure is left to the reads to report. It runs on the held-set
// writer's goroutine, off the read path.
func (s *subscription) lookAtFloor(ctx context.Context) {
	s.mu.Lock()
	c := s.cons
	s.mu.Unlock()
	ictx, cancel := context.WithTimeout(ctx, heldTimeout)
	defer cancel()
	if info, err := c.Info(ictx); err == nil {
		s.noteFloor(c, info)
	}
}

// noteFloor keeps the ack floor of info, the info of consumer c, while c
// is still the subscription's consumer. The floor of one consumer only
// moves forward; a consumer of the same name made again (by another
// process's recover, at its own floor, perhaps lower) starts a new one.
func (s *subscription) noteFloor(c jetstream.Consumer, info *jetstream.ConsumerInfo) {
	if info == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cons != c {
		return
	}
	if !info.Created.Equal(s.floorOf) {
		s.floor, s.floorOf = info.AckFloor.Stream, info.Created
		return
	}
	s.floor = max(s.floor, info.AckFloor.Stream)
}

// noReply is how long a pull request that does not wait may take before
// the subscription checks that its consumer still exists (nats.go ends
// such a request after a second without reply).
const noReply = 900 * time.Millisecond

// recover looks, after a broken read, whether the group's consumer (or
// its stream) is gone — deleted by an operator, or lost by a server
// restarted without its store — and creates it again: after the ack
// floor the subscription last saw, when the stream is the one that floor
// comes from (what follows the floor may not have been handled; what
// precedes it was), else from the start of the stream, so that no event
// the stream holds is skipped. It returns err, which the engine reports
// and backs off from.
func (s *subscription) recover(ctx context.Context, err error) error {
	if ctx.Err() != nil || errors.Is(err, transports.ErrClosed) {
		return err
	}
	if !s.consumerGone(ctx) {
		return err
	}
	// Ask again for the stream too, which may be gone with it.
	s.t.forgetStream(s.topic)
	ictx, cancel := s.t.timeout(ctx)
	defer cancel()
	after, streamCreated, cerr := s.resumePoint(ictx)
	if cerr != nil {
		return errors.Join(err, cerr)
	}
	c, created, after, cerr := s.remake(ictx, after, streamCreated)
	if cerr != nil {
		return errors.Join(err, cerr) // the next broken read tries again, from what it finds then
	}
	s.mu.Lock()
	s.cons, s.floor = c, 0
	s.mu.Unlock()
	s.streamCreated = created
	s.noteFloor(c, c.CachedInfo())
	start := "the start of the stream"
	if after > 0 {
		start = fmt.Sprintf("stream sequence %d, after the last one its group had acknowledged", after+1)
	}
	s.t.log.Warn("nats: consumer was gone; made again (if this process made it, at "+start+")",
		"group", s.group, "stream", s.t.opts.StreamName(s.topic))
	return err
}

// resumePoint makes the stream again if it is gone and returns the stream
// sequence after which the group's consumer resumes: the ack floor the
// subscription last saw, or 0 (the start) when the stream is not the one
// that floor comes from (made again: its sequences start again) or its
// sequences went back (restored). It returns the stream's creation time
// too.
func (s *subscription) resumePoint(ctx context.Context) (after uint64, streamCreated time.Time, err error) {
	st, err := s.t.ensureStream(ctx, s.topic)
	if err != nil {
		return 0, time.Time{}, err
	}
	s.mu.Lock()
	after = s.floor
	s.mu.Unlock()
	info := st.CachedInfo()
	if !info.Created.Equal(s.streamCreated) || after > info.State.LastSeq {
		after = 0
	}
	return after, info.Created, nil
}

// remake makes the group's consumer after stream sequence after, on the
// stream created at streamCreated, and returns it with the creation time
// of the stream it landed on. The stream made again meanwhile, a consumer
// after the old floor would skip its first events: it is then made again
// from the start, and after returned as 0.
func (s *subscription) remake(ctx context.Context, after uint64, streamCreated time.Time) (jetstream.Consumer, time.Time, uint64, error) {
	// The AckWait the group had when this subscription last saw it, if
	// longer than this process's: the group's other processes keep their
	// messages alive within theirs.
	ackWait := s.ackWait
	if info := s.cons.CachedInfo(); info != nil {
		ackWait = max(ackWait, info.Config.AckWait)
	}
	c, err := s.t.ensureConsumer(ctx, s.topic, s.group, ackWait, transports.SinceBeginning, after)
	if err != nil {
		return nil, time.Time{}, 0, err
	}
	created, err := s.t.streamCreatedNow(ctx, s.topic)
	if err != nil || after == 0 || created.Equal(streamCreated) {
		return c, created, after, err
	}
	if err := s.t.js.DeleteConsumer(ctx, s.t.opts.StreamName(s.topic), ConsumerName(s.group)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, time.Time{}, 0, err
	}
	if c, err = s.t.ensureConsumer(ctx, s.topic, s.group, ackWait, transports.SinceBeginning, 0); err != nil {
		return nil, time.Time{}, 0, err
	}
	created, err = s.t.streamCreatedNow(ctx, s.topic)
	return c, created, 0, err
}

// readErr maps a failed read: ctx's error when ctx is done, ErrClosed once
// the transport closed, the error otherwise (a broken read).
func (s *subscription) readErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if s.isClosed() {
		return transports.ErrClosed
	}
	if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
		return fmt.Errorf("nats: consumer %s of %s is gone: %w", ConsumerName(s.group), s.t.opts.StreamName(s.topic), err)
	}
	return fmt.Errorf("nats: read %s for %s: %w", s.t.opts.StreamName(s.topic), s.group, err)
}

// toMessage turns a JetStream message into a driver message; dm is nil
// for a replay meant for another group (to be acknowledged unseen), d is
// nil for a message without JetStream metadata (not a consumer delivery).
func (s *subscription) toMessage(ctx context.Context, m jetstream.Msg) (d *delivery, dm *driver.Message) {
	md, err := m.Metadata()
	if err != nil {
		return nil, nil
	}
	d = &delivery{msg: m, seq: md.Sequence.Stream, delivered: md.NumDelivered}
	h := m.Headers()
	if g := first(h, HeaderReplayGroup); g != "" && g != s.group {
		return d, nil
	}
	msg, perr := decodeStored(h, m.Data(), md.Stream, md.Sequence.Stream)
	topic, _ := strings.CutPrefix(m.Subject(), s.t.opts.Prefix+".")
	attempts := int(md.NumDelivered) - 1
	if md.NumDelivered > 1 {
		if a, ok := s.correction(ctx, d); ok {
			attempts, d.corrected = a, true
		}
	}
	return d, &driver.Message{
		AckID:    d,
		Topic:    topic,
		Message:  msg,
		Poison:   perr,
		Attempts: max(attempts, 0),
		Recorded: true,
	}
}

func (s *subscription) hold(d *delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held == nil {
		s.held = map[*delivery]struct{}{}
	}
	s.held[d] = struct{}{}
}

func (s *subscription) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed || s.t.isClosed()
}

func (s *subscription) release(d *delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.held, d)
}

// Pending returns nothing: JetStream keeps no pending list per process.
func (s *subscription) Pending(context.Context, string, int) ([]*driver.Message, string, error) {
	if s.isClosed() {
		return nil, "", transports.ErrClosed
	}
	return nil, "", nil
}

// Claim returns nothing: JetStream itself redelivers what a process left
// unacknowledged after AckWait, through Receive.
func (s *subscription) Claim(context.Context, time.Duration, string, int) ([]*driver.Message, string, error) {
	if s.isClosed() {
		return nil, "", transports.ErrClosed
	}
	return nil, "", nil
}

// KeepAlive sends an in-progress acknowledgement for each delivery, which
// restarts its AckWait on the server. The engine calls it for what it
// holds, at least three times within AckWait (see Capabilities).
func (s *subscription) KeepAlive(ctx context.Context, ids []driver.AckID) error {
	if len(ids) == 0 {
		return nil
	}
	var errs []error
	for _, id := range ids {
		if d, ok := id.(*delivery); ok {
			// A delivery acked meanwhile needs no keep-alive.
			if err := d.msg.InProgress(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
				errs = append(errs, err)
			}
		}
	}
	return s.flush(ctx, errs)
}

// Record stores an attempt count that differs from JetStream's (see
// correction). The engine does not call it here: every delivery is
// Recorded, JetStream counted it.
func (s *subscription) Record(ctx context.Context, attempts []driver.Attempt) error {
	var errs []error
	for _, a := range attempts {
		if d, ok := a.AckID.(*delivery); ok {
			errs = append(errs, s.setAttempts(ctx, d, a.Attempts))
		}
	}
	return errors.Join(errs...)
}

// setAttempts stores a correction when attempts differs from JetStream's
// count of d, and drops a stale one otherwise.
func (s *subscription) setAttempts(ctx context.Context, d *delivery, attempts int) error {
	if uint64(attempts) != d.delivered {
		d.corrected = true
		return s.storeCorrection(ctx, d, attempts)
	}
	if d.corrected {
		d.corrected = false
		s.dropCorrection(ctx, d)
	}
	return nil
}

// Ack acknowledges every delivery, then flushes the connection, so that
// the server has them when Ack returns.
func (s *subscription) Ack(ctx context.Context, ids []driver.AckID) error {
	if s.isClosed() {
		return transports.ErrClosed
	}
	ds := make([]*delivery, 0, len(ids))
	for _, id := range ids {
		if d, ok := id.(*delivery); ok {
			ds = append(ds, d)
		}
	}
	return s.ack(ctx, ds)
}

func (s *subscription) ack(ctx context.Context, ds []*delivery) error {
	var errs []error
	for _, d := range ds {
		s.release(d)
		if err := d.msg.Ack(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			errs = append(errs, err)
		}
		if d.corrected {
			s.dropCorrection(ctx, d)
		}
	}
	return s.flush(ctx, errs)
}

// Nack returns each delivery with NakWithDelay: the server delivers it
// again when the delay ends, to any process of the group. When the
// engine's count differs from JetStream's (a delivery that never reached a
// handler), its count is stored (see correction).
func (s *subscription) Nack(ctx context.Context, nacks []driver.Nack) error {
	if s.isClosed() {
		return transports.ErrClosed
	}
	var errs []error
	for _, n := range nacks {
		d, ok := n.AckID.(*delivery)
		if !ok {
			continue
		}
		s.release(d)
		if err := s.setAttempts(ctx, d, n.Attempts); err != nil {
			errs = append(errs, err)
		}
		var err error
		if n.Delay > 0 {
			err = d.msg.NakWithDelay(n.Delay)
		} else {
			err = d.msg.Nak()
		}
		if err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			errs = append(errs, err)
		}
	}
	return s.flush(ctx, errs)
}

// Close naks at once every delivery still held, so that the group gets
// them again without waiting for AckWait. Their attempt counts stay as
// JetStream has them: the engine nacks what it did not hand out before
// it closes.
func (s *subscription) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	held := s.held
	s.held = nil
	s.mu.Unlock()
	// End the waiting read, if any (see waitingRead): what it got is
	// given back before the held deliveries are.
	s.endLife()
	s.reads.Wait()
	// No write of the held set after this Close deletes it.
	s.stopHeldWriter()
	var errs []error
	for d := range held {
		if err := d.msg.Nak(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			errs = append(errs, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.t.opts.Timeout)
	defer cancel()
	err := s.flush(ctx, errs)
	if err == nil {
		// Everything held went back: nothing for a restart to return.
		s.dropHeld(ctx)
	}
	return err
}

// flush waits until the server has everything sent so far.
func (s *subscription) flush(ctx context.Context, errs []error) error {
	if len(errs) == 0 {
		fctx, cancel := s.t.timeout(ctx)
		defer cancel()
		if err := s.t.nc.FlushWithContext(fctx); err != nil {
			errs = append(errs, fmt.Errorf("nats: flush: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Attempt corrections. JetStream counts deliveries, which is the attempt
// count only while every delivery reaches a handler: a read the engine
// returns unhanded when it stops was counted and is no attempt. When the
// engine's count differs, the subscription
// stores "{attempts} {delivered}" under "{stream}/{group}/{stream seq}"
// in the record bucket (kind "attempts"); a later delivery of that message
// reports the stored attempts plus the deliveries since (each of which a
// process took and never settled), instead of JetStream's count. Ack
// deletes the correction.

func (s *subscription) correctionKey(d *delivery) string {
	return recordKeyOf(s.t.opts.StreamName(s.topic) + "/" + s.group + "/" + strconv.FormatUint(d.seq, 10))
}

func (s *subscription) storeCorrection(ctx context.Context, d *delivery, attempts int) error {
	v := strconv.Itoa(attempts) + " " + strconv.FormatUint(d.delivered, 10)
	return s.t.PutRecord(ctx, kindAttempts, s.correctionKey(d), []byte(v))
}

// correction returns the attempts of d from a stored correction.
func (s *subscription) correction(ctx context.Context, d *delivery) (int, bool) {
	kv, err := s.t.bucket(ctx, false)
	if kv == nil || err != nil {
		return 0, false
	}
	gctx, cancel := s.t.timeout(ctx)
	defer cancel()
	e, err := kv.Get(gctx, recordKey(kindAttempts, s.correctionKey(d)))
	if err != nil {
		return 0, false
	}
	var attempts int
	var delivered uint64
	if _, err := fmt.Sscanf(string(e.Value()), "%d %d", &attempts, &delivered); err != nil || delivered >= d.delivered {
		return 0, false
	}
	// Deliveries after the corrected one, before this one, are counted
	// as attempts (a process stopped holding them).
	return attempts + int(d.delivered-1-delivered), true
}

func (s *subscription) dropCorrection(ctx context.Context, d *delivery) {
	_ = s.t.DeleteRecord(ctx, kindAttempts, s.correctionKey(d))
}

// kindAttempts is the record kind of attempt corrections.
const kindAttempts = "attempts"

// Driver returns the transport's driver for the delivery engine: the
// transport itself (see Open).
func (t *Transport) Driver() driver.Driver { return t }
