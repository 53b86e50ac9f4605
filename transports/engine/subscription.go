package engine

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/driver"
)

// subscription is one Subscribe call. Its goroutines, and who stops them:
//
//   - Concurrency slots hand entries out on out and wait for their Ack or
//     Nack; a free slot that finds nothing queued reads for every free
//     slot (one reader at a time). They stop reading and handing out when
//     reading stops (the Subscribe context ends, or Close; out is then
//     closed) and stop waiting at Close.
//   - the scheduler (pending-list brokers) queues nacked entries whose
//     delay ended; it stops when reading stops.
//   - keepalive (brokers with a pending list or an AckWait) keeps the
//     claims of held entries alive until Close.
//   - the settler sends acks, nacks and attempt records until Close, after
//     a last flush.
type subscription struct {
	s *Subscriber
	d driver.Subscription
	// ahead is d when it reads ahead of the free slots (Capabilities.ReadAhead).
	ahead driver.AheadReceiver
	caps  driver.Capabilities
	topic string
	cfg   transports.SubscriberConfig
	opts  Options
	log   *slog.Logger

	// keepMu orders keep-alives and nacks: a keep-alive of entries read
	// from held before a nack removed one must not reach the broker after
	// that nack (it would undo the nack's delay or release).
	keepMu sync.Mutex

	out    chan *message.Message
	queue  chan *entry   // entries ready to hand out; each holds a token
	tokens chan struct{} // one per free slot and read-ahead entry: the reader reads only this many

	baseCtx  context.Context // parent of every message context
	readCtx  context.Context // reading: ends with Subscribe's context or Close
	stopRead context.CancelFunc
	lifeCtx  context.Context // ends at Close
	stopLife context.CancelFunc

	mu   sync.Mutex
	held map[driver.AckID]*entry // every entry this subscription holds
	// listReading is set while a read of the pending list (own pending, a
	// claim) is on its way; ackedAt holds the entries whose ack the broker
	// got meanwhile. The read may still return them (it took its snapshot
	// of the pending list before the ack): admit skips them. A read of new
	// entries never returns an entry delivered before, and a read that
	// starts after an ack completed does not see the entry.
	listReading bool
	ackedAt     map[driver.AckID]struct{}

	imu       sync.Mutex
	rctx      context.Context    // the context of reads, until interrupted
	interrupt context.CancelFunc // cancels rctx
	receiving int                // Receives running with rctx
	readFree  int                // free slots of the last read, on a driver that reads ahead

	rd         reader
	readerIdle chan struct{} // a token when no slot is reading

	sched    *scheduler
	settler  *settler
	inFlight atomic.Int32 // messages handed out and not settled
	// wanting is, on a driver that reads ahead, the slots in next()
	// without an entry less the entries queued: a slot adds itself as it
	// enters, and is taken off by the entry it gets — a queued one was
	// taken off as it was queued (queueEntry), one a read gives it as the
	// read admits it (admit). So a slot taking a queued entry changes
	// nothing, and no instant counts it twice.
	wanting atomic.Int32
	handed  atomic.Int64 // hand-outs so far, on a driver that reads ahead

	sendMu    sync.RWMutex // held for reading while a slot may send on out
	outClosed bool
	outDone   chan struct{}

	// callerSlots are the slots of SubscribeSlots, run by the caller's
	// goroutines (none for Subscribe: the engine runs its own). Their
	// settles hold settleMu for reading; Close sets settleClosed.
	callerSlots  []*callerSlot
	settleMu     sync.RWMutex
	settleClosed bool

	producers sync.WaitGroup // scheduler
	slots     sync.WaitGroup
	keeper    sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

type entryState uint32

const (
	queued  entryState = iota // read, waiting for a slot
	out                       // handed out, neither acked nor nacked
	delayed                   // nacked, waiting for its redelivery (pending-list brokers)
	acking                    // acked, its acknowledgement not sent yet
)

// entry is one broker entry the subscription holds.
type entry struct {
	id driver.AckID
	m  *driver.Message
	// state changes by the goroutine that owns the entry (the reader, the
	// slot handing it out, the settler, the scheduler); it is read under
	// subscription.mu, and changed under it where a reader needs more
	// than the state to agree (a delayed entry's attempts and due).
	state atomic.Uint32
	// attempts is the durable count of attempts that reached a handler
	// before the next hand-out; recorded says the broker already counted
	// the next hand-out (a new read).
	attempts int
	recorded bool
	// reread: read from the pending list (own pending, a claim), so
	// delivered before; its next attempt is recorded before the hand-out
	// (recordFirst).
	reread bool
	due    time.Time  // delayed: when it is handed out again
	handed bool       // m.Message was handed out once: later hand-outs use a copy
	ctx    msgContext // the context of the first hand-out (one allocation less)
}

func (e *entry) is(st entryState) bool { return entryState(e.state.Load()) == st }
func (e *entry) set(st entryState)     { e.state.Store(uint32(st)) }

func newSubscription(s *Subscriber, d driver.Subscription, topic string) *subscription {
	n := s.cfg.Concurrency
	caps := d.Capabilities()
	ahead, _ := d.(driver.AheadReceiver)
	if ahead != nil && caps.ReadAhead > 0 {
		n += caps.ReadAhead
	} else {
		ahead = nil
	}
	sub := &subscription{ahead: ahead,
		s: s, d: d, caps: caps, topic: topic, cfg: s.cfg, opts: s.opts,
		log: s.opts.Logger.With(slog.String("event", topic), slog.String("group", s.cfg.Group),
			slog.String("consumer", s.cfg.Consumer)),
		out:        make(chan *message.Message),
		queue:      make(chan *entry, n),
		tokens:     make(chan struct{}, n),
		held:       map[driver.AckID]*entry{},
		outDone:    make(chan struct{}),
		rd:         reader{pending: d.Capabilities().PendingList, nextClaim: time.Now()},
		readerIdle: make(chan struct{}, 1),
	}
	for range n {
		sub.tokens <- struct{}{}
	}
	return sub
}

func (s *subscription) start(ctx context.Context) {
	s.baseCtx = context.WithoutCancel(ctx)
	s.readCtx, s.stopRead = context.WithCancel(ctx)
	s.lifeCtx, s.stopLife = context.WithCancel(s.baseCtx)
	s.settler = newSettler(s)
	s.sched = newScheduler(s)

	if s.caps.PendingList {
		s.producers.Add(1)
		go s.sched.run()
	}
	if s.caps.PendingList || s.caps.AckWait > 0 {
		s.keeper.Add(1)
		go s.keepalive()
	}
	s.slots.Add(s.cfg.Concurrency)
	if s.callerSlots == nil {
		for range s.cfg.Concurrency {
			go s.slot()
		}
	}
	go s.closeOutWhenStopped()
	if !s.caps.PendingList {
		go s.closeWhenDrained()
	}
}

// closeWhenDrained closes the subscription of a broker without a pending
// list (RabbitMQ) once its Subscribe context is done and every message it
// handed out is acked or nacked, as Close would. Until then the driver's
// subscription stays open for those settlements; after it, the broker no
// longer pushes deliveries to a consumer nobody reads, where they would
// wait, unacknowledged and out of every other member's reach, until Close.
// (A pending-list broker delivers only what is read: nothing to stop.)
// Close stops it (the slots end), and closes only once.
func (s *subscription) closeWhenDrained() {
	<-s.readCtx.Done()
	<-s.outDone
	s.slots.Wait()
	if err := s.close(); err != nil {
		s.log.Warn("engine: closing the subscription after its context ended", slog.Any("error", err))
	}
}

// close stops reading, waits for the slots (acks and nacks made before
// still count), returns entries held and not handed out, flushes the
// settlements and closes the driver's subscription.
func (s *subscription) close() error {
	s.closeOnce.Do(func() {
		s.stopRead()
		<-s.outDone
		s.stopLife()
		if s.callerSlots != nil {
			s.endCallerSlots()
		}
		s.slots.Wait()
		s.keeper.Wait()
		s.releaseHeld()
		s.settler.close()
		s.closeErr = s.d.Close()
	})
	return s.closeErr
}

// closeOutWhenStopped closes out once reading stopped and no slot is
// about to send on it, then gives back what was queued and not handed out.
func (s *subscription) closeOutWhenStopped() {
	<-s.readCtx.Done()
	s.producers.Wait()
	s.rd.mu.Lock() // no slot reads any more
	defer s.rd.mu.Unlock()
	s.sendMu.Lock()
	s.outClosed = true
	close(s.out)
	s.sendMu.Unlock()
	for {
		select {
		case e := <-s.queue:
			s.want(+1) // off the queue, not to a slot
			s.giveBack(e)
			continue
		default:
		}
		break
	}
	close(s.outDone)
}

// releaseHeld returns to the broker every entry still held and not handed
// out: queued ones uncounted and at once, delayed ones when their delay ends.
func (s *subscription) releaseHeld() {
	now := time.Now()
	s.mu.Lock()
	var nacks []driver.Nack
	for id, e := range s.held {
		switch entryState(e.state.Load()) {
		case queued:
			nacks = append(nacks, driver.Nack{AckID: id, Attempts: e.attempts})
		case delayed:
			nacks = append(nacks, driver.Nack{AckID: id, Attempts: e.attempts, Delay: max(e.due.Sub(now), 0)})
		default:
			continue
		}
		delete(s.held, id)
	}
	s.mu.Unlock()
	s.settler.nack(nacks...)
}

// giveBack returns an entry that was queued and never handed out: the
// broker gets it back with its attempt count unchanged.
func (s *subscription) giveBack(e *entry) {
	s.mu.Lock()
	delete(s.held, e.id)
	s.mu.Unlock()
	s.settler.nack(driver.Nack{AckID: e.id, Attempts: e.attempts})
	s.tokens <- struct{}{}
	s.readerFree()
}

// queueEntry queues e for a slot; the caller holds a token for it, so
// it never blocks. The count of wanting slots drops first: for an
// instant it is one short, never one over (a slot could take e at once).
func (s *subscription) queueEntry(e *entry) {
	s.want(-1)
	s.queue <- e
}

// want changes the count of wanting slots (subscription.wanting), on a
// driver that reads ahead: +1 for a slot entering next() or an entry taken
// off the queue by something other than a slot (Close gives it back), -1
// for an entry queued or a slot that got its entry from a read (admit) or
// leaves next() with none.
func (s *subscription) want(delta int32) {
	if s.ahead != nil {
		s.wanting.Add(delta)
	}
}

// listReadStarts marks a read of the pending list on its way: acks that
// complete until its admit are remembered (ackedAt).
func (s *subscription) listReadStarts() {
	s.mu.Lock()
	s.listReading = true
	s.mu.Unlock()
}

// admit takes the entries of one read: it returns the oldest for the
// reading slot to hand out, queues the others, and reports how many it
// took (each took one of the reader's tokens). fresh says they come from
// Receive: entries never delivered before, so neither held already nor
// acknowledged (no lookups).
func (s *subscription) admit(msgs []*driver.Message, fresh bool) (own *entry, used int) {
	var foreign []*driver.Message
	s.mu.Lock()
	for _, m := range msgs {
		if m.Topic != "" && m.Topic != s.topic {
			foreign = append(foreign, m)
			continue
		}
		if !fresh {
			if _, acked := s.ackedAt[m.AckID]; acked {
				// Acknowledged while this read was on its way: never again.
				continue
			}
			if _, dup := s.held[m.AckID]; dup {
				// Held already (an own-pending re-read, a claim racing a
				// keepalive): never handed out twice. The read counted nothing.
				continue
			}
		}
		e := &entry{id: m.AckID, m: m, attempts: m.Attempts, recorded: m.Recorded, reread: !fresh}
		s.held[m.AckID] = e
		used++
		if own == nil {
			own = e
			s.want(-1) // the reading slot is served
			continue
		}
		s.queueEntry(e) // never blocks: one token per queued entry
	}
	// Reads run one at a time: the next one starts after every ack
	// completed so far.
	s.listReading = false
	clear(s.ackedAt)
	s.mu.Unlock()
	for _, m := range foreign {
		// A queue shared by several events of the group: not ours.
		s.log.Debug("engine: delivery of another event returned to the broker",
			slog.String("fired_as", m.Topic))
		s.settler.nack(driver.Nack{AckID: m.AckID, Attempts: m.Attempts, Delay: MismatchDelay})
	}
	return own, used
}

// forget drops acknowledged entries once the broker has their acks: until
// then a re-read of own pending (after a broken read) must not hand them
// out again.
func (s *subscription) forget(ids []driver.AckID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if e := s.held[id]; e != nil && e.is(acking) {
			s.forgetLocked(id)
		}
	}
}

// forgetLocked drops an acknowledged entry the subscription holds,
// remembering its ack while a read of the pending list is on its way.
func (s *subscription) forgetLocked(id driver.AckID) {
	delete(s.held, id)
	if !s.listReading {
		return
	}
	if s.ackedAt == nil {
		s.ackedAt = map[driver.AckID]struct{}{}
	}
	s.ackedAt[id] = struct{}{}
}

// ids returns the IDs of every held entry.
func (s *subscription) ids() []driver.AckID {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]driver.AckID, 0, len(s.held))
	for id := range s.held {
		ids = append(ids, id)
	}
	return ids
}

// keepalive keeps the claims of every held entry alive, so that no other
// member claims an entry in a handler or waiting for its redelivery, and
// a broker with an AckWait does not deliver it again meanwhile.
func (s *subscription) keepalive() {
	defer s.keeper.Done()
	t := time.NewTicker(s.keepEvery())
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.lifeCtx.Done():
			return
		}
		s.keepMu.Lock()
		if ids := s.ids(); len(ids) > 0 {
			if err := s.d.KeepAlive(s.lifeCtx, ids); err != nil && s.lifeCtx.Err() == nil {
				s.log.Warn("engine: keep claims alive failed", slog.Any("error", err))
			}
		}
		s.keepMu.Unlock()
	}
}

// keepEvery is how often keepalive runs: Options.KeepAliveInterval, and
// at least three times within the broker's own AckWait.
func (s *subscription) keepEvery() time.Duration {
	every := s.opts.KeepAliveInterval
	if w := s.caps.AckWait; w > 0 {
		every = min(every, max(w/3, minClaimInterval/2))
	}
	return every
}
