package nats

import (
	"container/heap"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The mover. Every transport runs one (unless Options.NoScheduleMover);
// the lease makes one of them move due events at a time:
//
//  1. It waits for the schedule stream to exist: one lookup at start,
//     then JetStream's stream-created advisory, and a lookup every
//     scheduleProbe in case the advisory was missed.
//  2. It watches the lease subject (an ordered consumer, last message
//     first). A transport that saw no renewal for the lease's time to
//     live (written in the lease), or a release, takes the lease over
//     with a publish conditional on the lease's last sequence: one of the
//     contenders wins.
//  3. The holder renews the lease (asynchronously) — every scheduleRenew
//     with a time to live of scheduleLease while anything is scheduled,
//     every scheduleIdleRenew with scheduleIdleLease while nothing is —
//     and keeps an index of the schedule stream in memory, fed by an
//     ordered consumer from the stream's first message: each event's due
//     time (and its message when due within scheduleHorizon). A timer
//     armed scheduleClaimAhead before the earliest due time wakes it; it
//     moves what is due by then in batches (see work), up to
//     scheduleWorkers batches at once.
//
// The lease only saves work: moves and cancels are conditional publishes
// on the event's subject, so two movers never both move an event, and a
// move never follows a successful cancel.
const (
	// scheduleLease is how long a holder with events scheduled may go
	// without renewing before another transport takes over: about the
	// most a killed mover delays due events, plus reading the schedule
	// stream. scheduleRenew is how often it renews. Shorter leases were
	// taken over from live holders whose process the machine held up
	// for a few hundred ms (load average 15 on 2 cores), each takeover
	// costing a read of the whole schedule stream.
	scheduleLease = time.Second
	scheduleRenew = 200 * time.Millisecond
	// scheduleIdleLease and scheduleIdleRenew are the same while nothing
	// is scheduled: an idle holder renews once a second. An event
	// scheduled then makes the holder renew at once with scheduleLease;
	// only a holder killed while idle delays an event scheduled right
	// after, by up to scheduleIdleLease.
	scheduleIdleLease = 3 * time.Second
	scheduleIdleRenew = time.Second
	// scheduleProbe is how often a mover looks whether the schedule stream
	// appeared, besides the advisory.
	scheduleProbe = 5 * time.Second
	// scheduleRetry is how long a move that failed waits before the next
	// attempt (the event stays scheduled; the others move on).
	scheduleRetry = time.Second
	// scheduleHorizon: the index keeps the message of an event due within
	// it (read with the index); later ones are fetched when due.
	scheduleHorizon = time.Minute
	// scheduleBatch is the most entries one worker moves together, and
	// scheduleWorkers the most batches in flight.
	scheduleBatch   = 128
	scheduleWorkers = 16
	// scheduleTick is the least time between two dispatches: events due
	// within it are moved in one batch.
	scheduleTick = 10 * time.Millisecond
	// scheduleClaimAhead: a mover claims an event (its marker) up to this
	// long before its due time and publishes it at the due time, so that
	// only one round trip lies between the due time and the event's
	// stream. A cancel within it returns ErrNotScheduled.
	scheduleClaimAhead = 50 * time.Millisecond
	// markerGrace is how long the holder leaves a move marker of another
	// mover, published while it held the lease (an overlap at a
	// takeover), to that mover before finishing the move itself.
	markerGrace = 2 * time.Second
	// tombstoneSweep is when the holder deletes a cancel's tombstone, in
	// case the process that cancelled died before deleting it.
	tombstoneSweep = 10 * time.Second
)

// mover moves due scheduled events of a transport into their streams. Its
// goroutine is stopped by stop (Transport.Close).
type mover struct {
	t       *Transport
	token   string
	idle    bool          // Options.NoScheduleMover: nothing runs
	created chan struct{} // this transport created the schedule stream
	cancel  context.CancelFunc
	done    chan struct{}
}

// startMover starts the mover of t.
func startMover(t *Transport) *mover {
	m := &mover{t: t, token: rand.Text(), created: make(chan struct{}, 1)}
	if t.opts.NoScheduleMover {
		m.idle = true
		return m
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel, m.done = cancel, make(chan struct{})
	go m.run(ctx)
	return m
}

// streamCreated wakes a mover that waits for the schedule stream.
func (m *mover) streamCreated() {
	if m == nil {
		return
	}
	select {
	case m.created <- struct{}{}:
	default:
	}
}

// stop stops the mover and gives its lease up.
func (m *mover) stop() {
	if m == nil || m.idle {
		return
	}
	m.cancel()
	<-m.done
}

func (m *mover) run(ctx context.Context) {
	defer close(m.done)
	fails := 0
	for {
		s, err := m.waitStream(ctx)
		if err == nil {
			began := time.Now()
			err = m.serve(ctx, s)
			if time.Since(began) > time.Minute {
				fails = 0
			}
		}
		if ctx.Err() != nil {
			return
		}
		fails++
		wait := min(5*time.Second, 50*time.Millisecond<<min(fails, 7))
		m.t.log.Debug("nats: the mover of scheduled events stopped; it starts again", "error", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// waitStream returns the schedule stream once it exists.
func (m *mover) waitStream(ctx context.Context) (jetstream.Stream, error) {
	var advisory chan *natsgo.Msg
	for {
		s, err := m.t.scheduleStream(ctx, false)
		if s != nil || err != nil {
			return s, err
		}
		if advisory == nil {
			advisory = make(chan *natsgo.Msg, 4)
			sub, err := m.t.nc.ChanSubscribe("$JS.EVENT.ADVISORY.STREAM.CREATED."+m.t.opts.ScheduleStream(), advisory)
			if err == nil {
				defer func() { _ = sub.Unsubscribe() }()
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-advisory:
		case <-m.created:
		case <-time.After(scheduleProbe):
		}
	}
}

// entry kinds: what the holder does with a message of the schedule stream.
const (
	kindMove      = iota // a scheduled event: move it when due
	kindFinish           // a move marker: publish the event, delete the marker
	kindSweep            // a tombstone: delete it
	kindSupersede        // an earlier copy of an event ID scheduled again: cancel it
)

// entry is the last message of one subject of the schedule stream.
type entry struct {
	subject  string
	tok      string
	seq      uint64
	kind     int
	due      time.Time
	topic    string
	hdr      natsgo.Header // nil when not kept: fetched when due
	data     []byte
	inflight bool
}

// dueHeap orders index items by due time; items whose entry changed are
// skipped when popped.
type dueHeap []dueItem

type dueItem struct {
	due     time.Time
	subject string
	seq     uint64
}

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueItem)) }
func (h *dueHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// leaseMsg is a message of the lease subject.
type leaseMsg struct {
	seq     uint64
	token   string
	ttl     time.Duration
	process string
}

// indexMsg is a message of the schedule stream read by the holder.
type indexMsg struct {
	epoch   int
	subject string
	seq     uint64
	hdr     natsgo.Header
	data    []byte
}

// moveResult is what a worker did with one entry of its batch.
type moveResult struct {
	epoch   int
	subject string
	seq     uint64 // the entry's sequence when dispatched
	// retry, when set, replaces the entry (due after scheduleRetry).
	retry *entry
	// origSeq and markerSeq: a move published its marker.
	origSeq, markerSeq uint64
}

// session is one run of the mover against an existing schedule stream.
// Only its goroutine touches its fields; consumers and workers talk to it
// through channels.
type session struct {
	m    *mover
	t    *Transport
	s    jetstream.Stream
	quit chan struct{} // closed when the session ends

	leaseCh chan leaseMsg
	indexCh chan indexMsg
	errCh   chan error
	results chan []moveResult

	holder    bool
	leaseSeq  uint64
	leaseSeen time.Time     // when the lease last changed hands or was renewed
	leaseTTL  time.Duration // the time to live the last lease message gave
	renewAt   time.Time     // holder: when to renew next
	busy      bool          // holder: renewing with scheduleLease
	// renewal is the holder's renewal in flight: asynchronous, so that
	// a slow server never holds up the moves.
	renewal     jetstream.PubAckFuture
	renewalTTL  time.Duration
	renewalSent time.Time

	epoch       int
	indexCC     jetstream.ConsumeContext
	bySubject   map[string]*entry
	byID        map[string]string // ID token → subject of its latest scheduled copy
	due         dueHeap
	rebuildUpTo uint64
	lastSeq     uint64
	claimed     map[uint64]uint64 // scheduled seq → seq of this mover's marker (0: not yet known)
	inflight    int               // batches
	// lastDispatch is when dispatch last ran.
	lastDispatch time.Time
	workers      sync.WaitGroup
}

// serve contends for the lease and, while it holds it, moves due events,
// until ctx ends or the schedule stream is gone.
func (m *mover) serve(ctx context.Context, s jetstream.Stream) (err error) {
	ss := &session{
		m: m, t: m.t, s: s, quit: make(chan struct{}),
		leaseCh: make(chan leaseMsg, 16), indexCh: make(chan indexMsg, 1024),
		errCh: make(chan error, 1), results: make(chan []moveResult, scheduleWorkers),
		leaseTTL: scheduleLease,
	}
	defer ss.close()
	lc, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{m.t.opts.leaseSubject()},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return ss.streamErr(ctx, err)
	}
	lcc, err := lc.Consume(func(msg jetstream.Msg) {
		md, err := msg.Metadata()
		if err != nil {
			return
		}
		select {
		case ss.leaseCh <- parseLease(md.Sequence.Stream, msg.Data()):
		case <-ss.quit:
		}
	}, jetstream.ConsumeErrHandler(ss.consumeErr))
	if err != nil {
		return ss.streamErr(ctx, err)
	}
	defer lcc.Stop()

	lctx, cancel := m.t.timeout(ctx)
	last, err := s.GetLastMsgForSubject(lctx, m.t.opts.leaseSubject())
	cancel()
	switch {
	case msgGone(err):
		ss.take(ctx)
	case err != nil:
		return ss.streamErr(ctx, err)
	default:
		lm := parseLease(last.Sequence, last.Data)
		ss.leaseSeq, ss.leaseSeen, ss.leaseTTL = lm.seq, time.Now(), lm.ttl
		// Given up, or held by an earlier incarnation of this process
		// name, which crashed: take it at once.
		if lm.token == "" || lm.process != "" && lm.process == m.t.opts.Process {
			ss.take(ctx)
		}
	}

	leaseTimer := time.NewTimer(ss.leaseWait())
	defer leaseTimer.Stop()
	dueTimer := time.NewTimer(time.Hour)
	defer dueTimer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-ss.errCh:
			if err := ss.streamErr(ctx, err); err != nil {
				return err
			}
		case lm := <-ss.leaseCh:
			ss.leaseUpdate(ctx, lm)
		case ack := <-ss.renewalOk():
			ss.renewed(ack, nil)
		case err := <-ss.renewalErr():
			ss.renewed(nil, err)
		case <-leaseTimer.C:
			if ss.holder {
				if !time.Now().Before(ss.renewAt) {
					ss.renew()
				}
			} else if time.Since(ss.leaseSeen) >= ss.leaseTTL {
				ss.take(ctx)
			}
		case im := <-ss.indexCh:
			if im.epoch == ss.epoch {
				ss.indexed(im)
				if !ss.busy && len(ss.bySubject) > 0 {
					ss.renewAt = time.Now() // shorten the lease at once
				}
			}
		case r := <-ss.results:
			ss.result(r)
		case <-dueTimer.C:
			ss.dispatch(ctx)
		}
		leaseTimer.Reset(ss.leaseWait())
		if ss.holder && ss.inflight < scheduleWorkers {
			dueTimer.Reset(ss.nextDispatch())
		} else {
			dueTimer.Stop() // a worker's result arms it again
		}
	}
}

// nextDispatch is how long until the next dispatch: when the earliest
// entry comes within scheduleClaimAhead of its due time, but at most one
// dispatch per scheduleTick, so that a stream of due times makes batches
// rather than one move per event.
func (ss *session) nextDispatch() time.Duration {
	return max(ss.nextDue(), time.Until(ss.lastDispatch.Add(scheduleTick)))
}

// close ends the session: consumers stop, workers finish, and a held
// lease is given up so that another transport takes over at once.
func (ss *session) close() {
	close(ss.quit)
	if ss.indexCC != nil {
		ss.indexCC.Stop()
	}
	ss.workers.Wait()
	if ss.holder {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if ss.renewal != nil { // the release must follow it
			select {
			case ack := <-ss.renewal.Ok():
				ss.leaseSeq = max(ss.leaseSeq, ack.Sequence)
			case <-ss.renewal.Err():
			case <-ctx.Done():
			}
		}
		_, _ = ss.t.js.PublishMsg(ctx, &natsgo.Msg{Subject: ss.t.opts.leaseSubject()}, jetstream.WithExpectLastSequencePerSubject(ss.leaseSeq))
	}
}

// consumeErr hands a consumer's error to the session (the first one
// pending is enough: it only makes the session look at the stream).
func (ss *session) consumeErr(_ jetstream.ConsumeContext, err error) {
	select {
	case ss.errCh <- err:
	default:
	}
}

// streamErr returns err when the schedule stream is gone (the session
// ends and the mover waits for it again); other errors are passing ones
// (the ordered consumers recover by themselves) and return nil.
func (ss *session) streamErr(ctx context.Context, err error) error {
	ictx, cancel := ss.t.timeout(ctx)
	defer cancel()
	if _, ierr := ss.s.Info(ictx); errors.Is(ierr, jetstream.ErrStreamNotFound) {
		ss.t.forgetScheduleStream()
		return fmt.Errorf("nats: schedule stream gone: %w", ierr)
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) || ctx.Err() != nil {
		return err
	}
	ss.t.log.Debug("nats: mover of scheduled events", "error", err)
	return nil
}

// leaseWait is how long until the lease timer should look again.
func (ss *session) leaseWait() time.Duration {
	at := ss.leaseSeen.Add(ss.leaseTTL)
	if ss.holder {
		at = ss.renewAt
	}
	return max(time.Until(at), time.Millisecond)
}

// parseLease reads a lease message: "{token} {ttl ms} {process}", or
// empty when the lease was given up.
func parseLease(seq uint64, data []byte) leaseMsg {
	token, rest, _ := strings.Cut(string(data), " ")
	ttl, process, _ := strings.Cut(rest, " ")
	ms, err := strconv.ParseInt(ttl, 10, 64)
	if err != nil || ms <= 0 {
		ms = scheduleLease.Milliseconds()
	}
	return leaseMsg{seq: seq, token: token, ttl: time.Duration(ms) * time.Millisecond, process: process}
}

// leaseData is the lease message of this mover with time to live ttl.
func (ss *session) leaseData(ttl time.Duration) []byte {
	return []byte(ss.m.token + " " + strconv.FormatInt(ttl.Milliseconds(), 10) + " " + ss.t.opts.Process)
}

// publishLease publishes token (with the time to live of ss.busy) on the
// lease subject if its last sequence is still ss.leaseSeq; ok is false
// when it was not. An empty token gives the lease up.
func (ss *session) publishLease(ctx context.Context, token string) (bool, error) {
	ttl := scheduleIdleLease
	if ss.busy {
		ttl = scheduleLease
	}
	var data []byte
	if token != "" {
		data = ss.leaseData(ttl)
	}
	ctx, cancel := context.WithTimeout(ctx, scheduleLease)
	defer cancel()
	ack, err := ss.t.js.PublishMsg(ctx, &natsgo.Msg{Subject: ss.t.opts.leaseSubject(), Data: data}, jetstream.WithExpectLastSequencePerSubject(ss.leaseSeq))
	if wrongLastSequence(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	ss.leaseSeq, ss.leaseSeen, ss.leaseTTL = ack.Sequence, time.Now(), ttl
	return true, nil
}

// take tries to take the lease over, with the short time to live until
// the index shows nothing is scheduled.
func (ss *session) take(ctx context.Context) {
	ss.busy = true
	ok, err := ss.publishLease(ctx, ss.m.token)
	if err != nil {
		ss.t.log.Debug("nats: cannot take the lease of the mover of scheduled events", "error", err)
	}
	if !ok {
		ss.leaseSeen = time.Now() // another took it (or the server is away): look again later
		return
	}
	ss.becomeHolder(ctx)
}

// renew sends a renewal of the held lease, with the time to live of what
// is scheduled; renewed takes its outcome.
func (ss *session) renew() {
	now := time.Now()
	if ss.renewal != nil && now.Sub(ss.renewalSent) < scheduleLease {
		return // the previous one is still on its way
	}
	ss.busy = len(ss.bySubject) > 0
	ss.renewAt = now.Add(scheduleIdleRenew)
	ss.renewalTTL = scheduleIdleLease
	if ss.busy {
		ss.renewAt, ss.renewalTTL = now.Add(scheduleRenew), scheduleLease
	}
	f, err := ss.t.js.PublishMsgAsync(&natsgo.Msg{Subject: ss.t.opts.leaseSubject(), Data: ss.leaseData(ss.renewalTTL)}, jetstream.WithExpectLastSequencePerSubject(ss.leaseSeq))
	if err != nil {
		ss.renewal = nil
		ss.t.log.Debug("nats: cannot renew the lease of the mover of scheduled events", "error", err)
		return
	}
	ss.renewal, ss.renewalSent = f, now
}

// renewed takes the outcome of the renewal in flight: another transport
// having taken the lease ends this one's moves.
func (ss *session) renewed(ack *jetstream.PubAck, err error) {
	ss.renewal = nil
	switch {
	case err == nil:
		if ss.holder && ack.Sequence > ss.leaseSeq {
			ss.leaseSeq, ss.leaseSeen, ss.leaseTTL = ack.Sequence, ss.renewalSent, ss.renewalTTL
		}
	case wrongLastSequence(err):
		if ss.holder {
			ss.stepDown()
		}
	default:
		ss.t.log.Debug("nats: cannot renew the lease of the mover of scheduled events", "error", err)
	}
}

// renewalOk and renewalErr are the channels of the renewal in flight;
// nil (never ready) without one.
func (ss *session) renewalOk() <-chan *jetstream.PubAck {
	if ss.renewal == nil {
		return nil
	}
	return ss.renewal.Ok()
}

func (ss *session) renewalErr() <-chan error {
	if ss.renewal == nil {
		return nil
	}
	return ss.renewal.Err()
}

// leaseUpdate follows the lease subject.
func (ss *session) leaseUpdate(ctx context.Context, lm leaseMsg) {
	if lm.seq <= ss.leaseSeq {
		return
	}
	ss.leaseSeq, ss.leaseSeen, ss.leaseTTL = lm.seq, time.Now(), lm.ttl
	if lm.token == ss.m.token {
		return // a renewal of ours whose acknowledgement was lost
	}
	if ss.holder {
		ss.stepDown()
	}
	if lm.token == "" {
		ss.take(ctx) // released
	}
}

// becomeHolder starts reading the schedule stream into a fresh index.
func (ss *session) becomeHolder(ctx context.Context) {
	ss.holder, ss.renewAt = true, time.Now().Add(scheduleRenew)
	ss.epoch++
	ss.bySubject, ss.byID, ss.due = map[string]*entry{}, map[string]string{}, nil
	ss.claimed, ss.lastSeq = map[uint64]uint64{}, 0
	ictx, cancel := ss.t.timeout(ctx)
	defer cancel()
	info, err := ss.s.Info(ictx)
	if err == nil {
		ss.rebuildUpTo = info.State.LastSeq
	}
	c, err := ss.s.OrderedConsumer(ictx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{ss.t.opts.scheduleRoot() + ">"},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	var cc jetstream.ConsumeContext
	if err == nil {
		epoch, quit := ss.epoch, ss.quit
		cc, err = c.Consume(func(msg jetstream.Msg) {
			md, err := msg.Metadata()
			if err != nil {
				return
			}
			select {
			case ss.indexCh <- indexMsg{epoch: epoch, subject: msg.Subject(), seq: md.Sequence.Stream, hdr: msg.Headers(), data: msg.Data()}:
			case <-quit:
			}
		}, jetstream.ConsumeErrHandler(ss.consumeErr))
	}
	if err != nil && ctx.Err() != nil {
		return // closing, not failing: close gives the lease up
	}
	if err != nil {
		// Without an index this transport cannot move: let another try.
		ss.t.log.Warn("nats: cannot read the schedule stream; giving the mover lease up", "error", err)
		ss.stepDown()
		ss.leaseSeen = time.Now()
		_, _ = ss.publishLease(ctx, "")
		return
	}
	ss.indexCC = cc
	ss.t.log.Debug("nats: moving scheduled events", "stream", ss.t.opts.ScheduleStream())
}

// stepDown stops moving: another transport holds the lease.
func (ss *session) stepDown() {
	ss.holder = false
	ss.epoch++
	if ss.indexCC != nil {
		ss.indexCC.Stop()
		ss.indexCC = nil
	}
	ss.bySubject, ss.byID, ss.due, ss.claimed = nil, nil, nil, nil
}

// put makes e the entry of its subject, due at e.due.
func (ss *session) put(e *entry) {
	ss.bySubject[e.subject] = e
	heap.Push(&ss.due, dueItem{due: e.due, subject: e.subject, seq: e.seq})
}

// remove forgets the entry of subject.
func (ss *session) remove(subject string) {
	e := ss.bySubject[subject]
	if e == nil {
		return
	}
	delete(ss.bySubject, subject)
	if ss.byID[e.tok] == subject {
		delete(ss.byID, e.tok)
	}
}

// indexed takes one message of the schedule stream into the index.
func (ss *session) indexed(im indexMsg) {
	ss.lastSeq = max(ss.lastSeq, im.seq)
	tok, _, ok := ss.t.opts.splitScheduleSubject(im.subject)
	if !ok {
		return
	}
	if cur := ss.bySubject[im.subject]; cur != nil && cur.seq >= im.seq {
		return
	}
	now := time.Now()
	e := &entry{subject: im.subject, tok: tok, seq: im.seq, topic: im.hdr.Get(HeaderScheduleTopic)}
	switch im.hdr.Get(HeaderScheduleState) {
	case schedStateCancelled:
		ss.remove(im.subject)
		e.kind, e.due = kindSweep, now.Add(tombstoneSweep)
	case schedStateMoving:
		token, orig, _ := strings.Cut(im.hdr.Get(HeaderScheduleMover), "/")
		if n, err := strconv.ParseUint(orig, 10, 64); err == nil && token == ss.m.token {
			if _, mine := ss.claimed[n]; mine {
				delete(ss.claimed, n) // this mover's own move, under way or done
				return
			}
		}
		e.kind, e.due = kindFinish, now
		e.hdr, e.data = im.hdr, im.data
		if im.seq > ss.rebuildUpTo {
			e.due = now.Add(markerGrace) // another mover's, published while this one held the lease
		}
		// A mover claims events up to scheduleClaimAhead before they are
		// due: one killed while it waited left markers of events not due
		// yet, which keep their due time.
		if ms, err := strconv.ParseInt(im.hdr.Get(HeaderScheduleDue), 10, 64); err == nil {
			if due := time.UnixMilli(ms); due.After(e.due) {
				e.due = due
			}
		}
	default:
		ms, err := strconv.ParseInt(im.hdr.Get(HeaderScheduleDue), 10, 64)
		if err != nil || e.topic == "" {
			ss.t.log.Warn("nats: ignoring a message of the schedule stream without a topic or due time", "subject", im.subject)
			return
		}
		e.kind, e.due = kindMove, time.UnixMilli(ms)
		if e.due.Sub(now) < scheduleHorizon {
			e.hdr, e.data = im.hdr, im.data
		}
		// The same event ID scheduled on another event: the earlier copy goes.
		if other, ok := ss.byID[tok]; ok && other != im.subject {
			if o := ss.bySubject[other]; o != nil && o.kind == kindMove && o.seq < im.seq {
				o2 := *o
				o2.kind, o2.due, o2.inflight = kindSupersede, now, false
				ss.put(&o2)
			}
		}
		ss.byID[tok] = im.subject
	}
	ss.put(e)
}

// nextDue is how long until the earliest entry not in flight is due.
func (ss *session) nextDue() time.Duration {
	for ss.due.Len() > 0 {
		it := ss.due[0]
		if e := ss.bySubject[it.subject]; e != nil && e.seq == it.seq && !e.inflight && e.due.Equal(it.due) {
			return max(time.Until(it.due)-scheduleClaimAhead, 0)
		}
		heap.Pop(&ss.due) // stale
	}
	return time.Hour
}

// dispatch starts the moves of what is due within scheduleClaimAhead:
// batches of up to scheduleBatch entries, up to scheduleWorkers batches
// at once.
func (ss *session) dispatch(ctx context.Context) {
	if !ss.holder {
		return
	}
	ss.lastDispatch = time.Now()
	now := ss.lastDispatch.Add(scheduleClaimAhead)
	for ss.inflight < scheduleWorkers && ss.due.Len() > 0 && !ss.due[0].due.After(now) {
		var batch []entry
		for len(batch) < scheduleBatch && ss.due.Len() > 0 && !ss.due[0].due.After(now) {
			it := heap.Pop(&ss.due).(dueItem)
			e := ss.bySubject[it.subject]
			if e == nil || e.seq != it.seq || e.inflight || !e.due.Equal(it.due) {
				continue
			}
			e.inflight = true
			if e.kind == kindMove {
				ss.claimed[e.seq] = 0
			}
			batch = append(batch, *e)
		}
		if len(batch) == 0 {
			break
		}
		ss.inflight++
		epoch := ss.epoch
		ss.workers.Add(1)
		go func() {
			defer ss.workers.Done()
			rs := ss.work(ctx, batch)
			for i := range rs {
				rs[i].epoch, rs[i].subject, rs[i].seq = epoch, batch[i].subject, batch[i].seq
			}
			ss.results <- rs // buffered for every batch in flight
		}()
	}
	if len(ss.claimed) > 4*scheduleBatch*scheduleWorkers {
		for orig, marker := range ss.claimed {
			if marker != 0 && marker <= ss.lastSeq {
				delete(ss.claimed, orig) // read past it: it was deleted before the index saw it
			}
		}
	}
}

// result takes the outcome of a batch into the index.
func (ss *session) result(rs []moveResult) {
	ss.inflight--
	for _, r := range rs {
		if r.epoch != ss.epoch {
			return
		}
		if r.origSeq != 0 {
			if r.markerSeq != 0 {
				if _, ok := ss.claimed[r.origSeq]; ok {
					ss.claimed[r.origSeq] = r.markerSeq
				}
			} else {
				delete(ss.claimed, r.origSeq)
			}
		}
		e := ss.bySubject[r.subject]
		if e == nil || e.seq != r.seq {
			continue // a later message of the subject replaced it meanwhile
		}
		if r.retry == nil {
			ss.remove(r.subject)
			continue
		}
		n := r.retry
		n.inflight, n.due = false, time.Now().Add(scheduleRetry)
		ss.put(n)
	}
}

// work does what the entries of a batch ask, on a worker goroutine
// (they are copies): sweeps and supersedes one by one (rare), then the
// moves in three rounds for the whole batch — every marker published
// asynchronously, then every event, then the markers deleted — so that a
// batch costs about three round trips, not three per event.
func (ss *session) work(ctx context.Context, batch []entry) []moveResult {
	rs := make([]moveResult, len(batch))
	type pending struct {
		i         int
		hdr       natsgo.Header
		data      []byte
		markerSeq uint64
		fut       jetstream.PubAckFuture
	}
	// Messages not kept in the index (due more than scheduleHorizon after
	// they were read) are read first, several at once.
	type read struct {
		hdr  natsgo.Header
		data []byte
		gone bool
		err  error
	}
	reads := make([]read, len(batch))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range batch {
		if e := &batch[i]; e.hdr == nil && (e.kind == kindMove || e.kind == kindFinish) {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				r := &reads[i]
				r.hdr, r.data, r.gone, r.err = ss.body(ctx, e)
				if r.err == nil && !r.gone {
					e.hdr, e.data = r.hdr, r.data
				}
			})
		}
	}
	wg.Wait()
	var claims, moves []*pending
	for i := range batch {
		e := &batch[i]
		if r := reads[i]; r.err != nil || r.gone {
			if r.err != nil {
				rs[i] = ss.failed(ctx, e, "read a scheduled event", r.err)
			}
			if e.kind == kindMove {
				rs[i].origSeq = e.seq
			}
			continue
		}
		switch e.kind {
		case kindSweep:
			if err := ss.deleteMsg(ctx, e.seq); err != nil {
				rs[i] = ss.failed(ctx, e, "delete a tombstone", err)
			}
		case kindSupersede:
			if _, err := ss.t.tombstone(ctx, ss.s, e.subject, e.seq); err != nil {
				rs[i] = ss.failed(ctx, e, "cancel an earlier copy", err)
			}
		case kindFinish:
			hdr, data, gone, err := ss.body(ctx, e)
			switch {
			case err != nil:
				rs[i] = ss.failed(ctx, e, "read a move marker", err)
			case !gone:
				moves = append(moves, &pending{i: i, hdr: hdr, data: data, markerSeq: e.seq})
			}
		case kindMove:
			rs[i].origSeq = e.seq
			hdr, data, gone, err := ss.body(ctx, e)
			if err != nil {
				rs[i] = ss.failed(ctx, e, "read a scheduled event", err)
				rs[i].origSeq = e.seq
				continue
			}
			if gone {
				continue
			}
			mh := natsgo.Header{}
			for k, v := range hdr {
				if !strings.HasPrefix(k, "Nats-") {
					mh[k] = v
				}
			}
			mh.Set(HeaderScheduleState, schedStateMoving)
			mh.Set(HeaderScheduleMover, ss.moverMark(e.seq))
			p := &pending{i: i, hdr: mh, data: data}
			p.fut, err = ss.t.js.PublishMsgAsync(&natsgo.Msg{Subject: e.subject, Header: mh, Data: data}, jetstream.WithExpectLastSequencePerSubject(e.seq))
			if err != nil {
				rs[i] = ss.failed(ctx, e, "claim a scheduled event", err)
				rs[i].origSeq = e.seq
				continue
			}
			claims = append(claims, p)
		}
	}
	// Round 1: the claims.
	for _, p := range claims {
		e := &batch[p.i]
		ack, err := waitAck(ctx, p.fut, ss.t.opts.Timeout)
		switch {
		case err == nil:
			p.markerSeq = ack.Sequence
		case wrongLastSequence(err):
			// Cancelled, replaced or moved by another mover — or a marker
			// of this one whose acknowledgement was lost.
			gctx, cancel := ss.t.timeout(ctx)
			last, gerr := ss.s.GetLastMsgForSubject(gctx, e.subject)
			cancel()
			if gerr != nil || last.Header.Get(HeaderScheduleMover) != ss.moverMark(e.seq) {
				continue
			}
			p.markerSeq = last.Sequence
		default:
			rs[p.i] = ss.failed(ctx, e, "claim a scheduled event", err)
			rs[p.i].origSeq = e.seq
			continue
		}
		rs[p.i].markerSeq = p.markerSeq
		moves = append(moves, p)
	}
	// Round 2: the events, with Nats-Msg-Id = event ID (a second publish
	// within the duplicate window is stored once).
	retry := func(p *pending, what string, err error) {
		e := &batch[p.i]
		n := *e
		n.kind, n.seq, n.hdr, n.data = kindFinish, p.markerSeq, p.hdr, p.data
		if ctx.Err() == nil {
			ss.t.log.Warn("nats: could not move a scheduled event; it stays scheduled and is retried",
				"subject", e.subject, "step", what, "error", err, "retry_in", scheduleRetry)
		}
		rs[p.i].retry = &n
	}
	// Claimed up to scheduleClaimAhead early: each event waits for its due
	// time.
	slices.SortFunc(moves, func(a, b *pending) int { return batch[a.i].due.Compare(batch[b.i].due) })
	var published []*pending
	for _, p := range moves {
		e := &batch[p.i]
		if !sleepUntil(ctx, e.due) {
			retry(p, "wait for the due time", ctx.Err())
			continue
		}
		msg, err := decode(p.hdr, p.data)
		if err != nil {
			ss.t.log.Error("nats: dropping a scheduled message without an event ID", "subject", e.subject)
			published = append(published, p)
			continue
		}
		if _, err := ss.t.ensureStream(ctx, e.topic); err != nil {
			retry(p, "publish", err)
			continue
		}
		nm, err := encode(ss.t.opts.Subject(e.topic), msg)
		if err == nil {
			p.fut, err = ss.t.js.PublishMsgAsync(nm)
		}
		if err != nil {
			retry(p, "publish", err)
			continue
		}
		published = append(published, p)
	}
	var deletes []*pending
	for _, p := range published {
		if p.fut != nil {
			if _, err := waitAck(ctx, p.fut, ss.t.opts.Timeout); err != nil {
				if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, natsgo.ErrNoResponders) {
					ss.t.forgetStream(batch[p.i].topic) // deleted under the transport: made again at the retry
				}
				retry(p, "publish", err)
				continue
			}
		}
		deletes = append(deletes, p)
	}
	// Round 3: the markers go, several requests at once.
	for _, p := range deletes {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := ss.deleteMsg(ctx, p.markerSeq); err != nil {
				retry(p, "delete the marker", err)
			}
		})
	}
	wg.Wait()
	return rs
}

// sleepUntil waits until at; false when ctx ended first.
func sleepUntil(ctx context.Context, at time.Time) bool {
	wctx, cancel := context.WithDeadline(ctx, at)
	defer cancel()
	<-wctx.Done()
	return ctx.Err() == nil
}

// moverMark is the HeaderScheduleMover value of this mover's marker for
// the scheduled message seq.
func (ss *session) moverMark(seq uint64) string {
	return ss.m.token + "/" + strconv.FormatUint(seq, 10)
}

// waitAck waits for the acknowledgement of an asynchronous publish.
func waitAck(ctx context.Context, f jetstream.PubAckFuture, timeout time.Duration) (*jetstream.PubAck, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case ack := <-f.Ok():
		return ack, nil
	case err := <-f.Err():
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		return nil, fmt.Errorf("no acknowledgement within %s", timeout)
	}
}

// body returns the message of e: kept in the index, or read by sequence;
// gone when it was deleted meanwhile. A marker whose mover finished
// meanwhile is published again all the same: the duplicate window drops
// the second copy.
func (ss *session) body(ctx context.Context, e *entry) (natsgo.Header, []byte, bool, error) {
	if e.hdr != nil {
		return e.hdr, e.data, false, nil
	}
	gctx, cancel := ss.t.timeout(ctx)
	defer cancel()
	m, err := ss.s.GetMsg(gctx, e.seq)
	if msgGone(err) {
		return nil, nil, true, nil
	}
	if err != nil {
		return nil, nil, false, err
	}
	if m.Subject != e.subject {
		return nil, nil, true, nil
	}
	return m.Header, m.Data, false, nil
}

// deleteMsg deletes a message of the schedule stream; one already gone is
// no error.
func (ss *session) deleteMsg(ctx context.Context, seq uint64) error {
	ctx, cancel := ss.t.timeout(ctx)
	defer cancel()
	if err := ss.s.DeleteMsg(ctx, seq); err != nil && !msgGone(err) {
		return err
	}
	return nil
}

// failed is the result of a step that failed: the entry is tried again.
func (ss *session) failed(ctx context.Context, e *entry, what string, err error) moveResult {
	if ctx.Err() != nil {
		return moveResult{} // the session ends: the next holder moves it
	}
	ss.t.log.Warn("nats: could not "+what+"; retried", "subject", e.subject, "error", err, "retry_in", scheduleRetry)
	n := *e
	return moveResult{retry: &n}
}
