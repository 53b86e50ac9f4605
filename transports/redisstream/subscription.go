package redisstream

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/transports"
)

// subscription is one consumer reading one stream for one group. Its
// goroutines, and who stops them:
//
//   - reader, claimer, scheduler, janitor (producers) put entries on the
//     ready and prio queues; they stop when reading stops (the Subscribe
//     context ends or Close).
//   - Concurrency slot goroutines each hand one queued entry out on out
//     and wait for its Ack or Nack before taking the next, so at most
//     Concurrency messages are out at a time; they stop handing out when
//     reading stops (then out is closed) and stop waiting at Close.
//   - the keepalive loop resets the idle time of every held entry; it
//     stops at Close.
//   - acker sends acknowledgements in batches; it stops last, after a final
//     flush.
type subscription struct {
	t        *Transport
	client   redis.UniversalClient
	log      *slog.Logger
	topic    string
	stream   string
	group    string
	consumer string

	ackTimeout time.Duration
	batch      int
	claimEvery time.Duration
	keepEvery  time.Duration

	out chan *message.Message

	readCtx  context.Context
	stopRead context.CancelFunc
	lifeCtx  context.Context
	stopLife context.CancelFunc

	ready chan *entry   // entries read by the reader, in stream order
	prio  chan *entry   // redeliveries and claimed entries: handed out first
	space chan struct{} // a slot took from ready
	rd    *reader
	sched *scheduler
	acks  *acker
	held  holdings

	// sendMu is held for reading by a slot while it may send on out, and
	// for writing to close out once reading stopped.
	sendMu    sync.RWMutex
	outClosed bool
	outDone   chan struct{} // closed once out is

	producers sync.WaitGroup // reader, its interrupter, scheduler, claimer, janitor
	slots     sync.WaitGroup // the Concurrency slot goroutines
	keeper    sync.WaitGroup // keepalive
	closeOnce sync.Once
	slotCount int
}

// entry is one delivery of a stream entry, decoded and ready to hand out.
type entry struct {
	id   string
	msg  *message.Message
	info *transports.DeliveryInfo
}

func newSubscription(t *Transport, cfg transports.SubscriberConfig, topic, stream string) *subscription {
	batch := t.opts.Batch
	if batch <= 0 {
		batch = min(readAhead*cfg.Concurrency, maxBatch)
	}
	claimEvery := t.opts.ClaimInterval
	if claimEvery <= 0 {
		claimEvery = min(max(cfg.AckTimeout/4, minClaimInterval), maxClaimInterval)
	}
	s := &subscription{
		t:          t,
		client:     t.client,
		log:        t.log.With(slog.String("stream", stream), slog.String("group", cfg.Group), slog.String("consumer", cfg.Consumer)),
		topic:      topic,
		stream:     stream,
		group:      cfg.Group,
		consumer:   cfg.Consumer,
		ackTimeout: cfg.AckTimeout,
		batch:      batch,
		claimEvery: claimEvery,
		keepEvery:  max(cfg.AckTimeout/3, minClaimInterval/2),
		out:        make(chan *message.Message),
		ready:      make(chan *entry, batch),
		prio:       make(chan *entry, batch),
		space:      make(chan struct{}, 1),
		held:       holdings{m: map[string]*holding{}},
		outDone:    make(chan struct{}),
		slotCount:  cfg.Concurrency,
	}
	return s
}

func (s *subscription) start(ctx context.Context) {
	s.lifeCtx, s.stopLife = context.WithCancel(context.WithoutCancel(ctx))
	s.readCtx, s.stopRead = context.WithCancel(ctx)

	s.acks = newAcker(s)
	s.sched = newScheduler(s)
	s.rd = newReader(s)

	s.keeper.Add(1)
	go s.keepalive()

	s.producers.Add(4)
	go s.rd.run()
	go s.rd.interruptOnStop()
	go s.sched.run()
	go s.claimLoop()
	if s.t.opts.ConsumerIdle > 0 {
		s.producers.Add(1)
		go s.janitor()
	}
	s.slots.Add(s.slotCount)
	for range s.slotCount {
		go s.slot()
	}
	go s.closeOutWhenStopped()
}

// close stops reading, waits for the producers and for out to close, stops
// the slots (acks and nacks already made still count), makes the
// entries it read but never handed out claimable by the group at once
// (nacked ones when their delay ends), and flushes acknowledgements.
// Entries handed out and neither acked nor nacked stay pending for this
// consumer: a restart with the same name gets them first, any other
// consumer after AckTimeout.
func (s *subscription) close() {
	s.closeOnce.Do(func() {
		s.stopRead()
		s.producers.Wait()
		<-s.outDone
		s.stopLife()
		s.slots.Wait()
		s.keeper.Wait()
		s.release()
		s.acks.close()
		s.rd.close()
	})
}

// admit decodes one stream entry into a delivery with the given attempt
// number. An entry replayed for another group is acknowledged and skipped.
func (s *subscription) admit(xm redis.XMessage, attempt int) (*entry, bool) {
	msg, err := decode(xm.ID, xm.Values)
	if err == nil {
		if g := msg.Metadata.Get(metaReplayGroup); g != "" && g != s.group {
			s.acks.add(xm.ID)
			return nil, false
		}
	}
	info := &transports.DeliveryInfo{Attempt: max(attempt, 1), Topic: s.topic, Group: s.group, Poison: err}
	msg.SetContext(transports.WithDeliveryInfo(s.lifeCtx, info))
	return &entry{id: xm.ID, msg: msg, info: info}, true
}

// slot hands out one entry at a time, redeliveries and claims first, and
// waits for its Ack or Nack before taking the next.
func (s *subscription) slot() {
	defer s.slots.Done()
	for {
		s.sendMu.RLock()
		if s.outClosed {
			s.sendMu.RUnlock()
			return
		}
		e := s.next()
		if e == nil {
			s.sendMu.RUnlock()
			return
		}
		s.held.set(e.id, handedOut, time.Time{})
		select {
		case s.out <- e.msg:
			s.sendMu.RUnlock()
		case <-s.readCtx.Done():
			s.held.set(e.id, buffered, time.Time{})
			s.sendMu.RUnlock()
			return
		}
		if !s.await(e) {
			return
		}
	}
}

// closeOutWhenStopped closes out once reading stopped and no slot is
// about to send on it.
func (s *subscription) closeOutWhenStopped() {
	<-s.readCtx.Done()
	s.sendMu.Lock()
	s.outClosed = true
	close(s.out)
	s.sendMu.Unlock()
	close(s.outDone)
}

// next returns the next queued entry, nil once reading stopped.
func (s *subscription) next() *entry {
	if s.readCtx.Err() != nil {
		return nil
	}
	select {
	case e := <-s.prio:
		return e
	default:
	}
	select {
	case e := <-s.prio:
		return e
	case e := <-s.ready:
		select {
		case s.space <- struct{}{}:
		default:
		}
		return e
	case <-s.readCtx.Done():
		return nil
	}
}

// await waits for the Ack or Nack of a handed-out message. It reports
// false at Close, when an Ack or Nack made before still counts and the
// message is otherwise left pending for this consumer.
func (s *subscription) await(e *entry) bool {
	select {
	case <-e.msg.Acked():
		s.acked(e)
		return true
	case <-e.msg.Nacked():
		s.nacked(e)
		return true
	case <-s.lifeCtx.Done():
		select {
		case <-e.msg.Acked():
			s.acked(e)
		case <-e.msg.Nacked():
			s.nacked(e)
		default:
		}
		return false
	}
}

func (s *subscription) acked(e *entry) {
	s.held.drop(e.id)
	s.acks.add(e.id)
}

// nacked schedules a redelivery after the delay the consumer asked for;
// the entry stays pending for this consumer meanwhile.
func (s *subscription) nacked(e *entry) {
	delay := e.info.RetryAfter
	if delay <= 0 {
		delay = transports.DefaultRetryAfter(e.info.Attempt)
	}
	due := time.Now().Add(delay)
	s.held.set(e.id, delayed, due)
	if s.readCtx.Err() == nil {
		s.sched.add(e.id, due)
	}
}

// waitSpace waits until the ready queue is at most half full.
func (s *subscription) waitSpace() bool {
	for len(s.ready) > s.batch/2 {
		select {
		case <-s.space:
		case <-s.readCtx.Done():
			return false
		}
	}
	return s.readCtx.Err() == nil
}

// pushPrio queues a redelivered or claimed entry.
func (s *subscription) pushPrio(e *entry) bool {
	select {
	case s.prio <- e:
		return true
	case <-s.readCtx.Done():
		return false
	}
}
