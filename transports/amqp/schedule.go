package amqp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
)

var _ transports.Scheduler = (*Transport)(nil)

// Scheduled events on RabbitMQ, without the delayed-message plugin.
//
// A scheduled event waits in durable TTL queues — the delay queues of the
// redelivery path, declared for a group of the transport's own,
// scheduleGroup — which dead-letter into that group's queue. A mover (a
// subscriber of that group, run by every process that scheduled or
// listens once the group exists) reads what expired and routes it again:
// into the delay queue of the largest step not longer than what is left,
// or, once due, to the exchange with the event's own routing key, as a
// Publish at that moment. The steps double from 50ms (50ms, 100ms, ...,
// about 39 days), so an event takes at most about 26 hops, each exact to
// the broker's TTL expiry, and the last 50ms are waited out by the mover.
//
// Limits: a message cannot be removed from a queue, so CancelScheduled
// returns ErrUnsupported; queues hold messages of every event, so
// Scheduled (counts per event) returns ErrUnsupported. A mover that
// crashes between its confirmed publish and its ack delivers the event
// twice, with the same event ID (idempotent listeners skip the second).
const (
	// scheduleGroup is the transport's own consumer group; no
	// "{service}-{listener}" name starts with an underscore.
	scheduleGroup = "_schedule"
	// scheduleTopic is the routing key its queue is bound with: no event
	// name starts with an underscore either.
	scheduleTopic = "_busline.schedule"
	// MetaScheduleTopic and MetaScheduleDue carry a waiting event's topic
	// and due time (Unix milliseconds) through the delay queues; they are
	// removed before the event is published.
	MetaScheduleTopic = "busline-schedule-topic"
	MetaScheduleDue   = "busline-schedule-due"
	// scheduleMinStep is the shortest delay queue.
	scheduleMinStep = 50 * time.Millisecond
	// scheduleProbe is how often a listening process without a mover
	// looks whether the schedule queue appeared.
	scheduleProbe = 5 * time.Second
	// scheduleMovers is how many waiting events one mover handles at once.
	scheduleMovers = 64
)

// scheduleStep returns the largest delay step not longer than d (d >= scheduleMinStep).
func scheduleStep(d time.Duration) time.Duration {
	s := scheduleMinStep
	for s*2 <= d {
		s *= 2
	}
	return s
}

// scheduler is the state of the transport's mover. mu is never held
// while calling into the transport (NewSubscriber takes the transport's lock).
type scheduler struct {
	mu       sync.Mutex
	starting bool
	started  bool
	checking bool
	stop     chan struct{} // closed by stopMover: ends the existence probe
	stopOnce sync.Once
	wg       sync.WaitGroup // the existence probe and the mover
}

// Schedule implements transports.Scheduler: the event waits in the delay
// queues until due. It returns once the broker confirmed the message.
func (t *Transport) Schedule(ctx context.Context, topic string, due time.Time, msg *message.Message) error {
	if t.isClosed() {
		return transports.ErrClosed
	}
	if err := checkShort("routing key (event name)", topic); err != nil {
		return err // the mover could never publish it
	}
	if now, err := transports.DueNow(time.Now(), due); err != nil || now {
		if err != nil {
			return err
		}
		return t.Publish(topic, msg)
	}
	// The mover's queue must exist before anything can expire into it.
	if err := t.admin.ensure(t.tp, t.tp.groupQueue(scheduleGroup), t.tp.groupArgs(scheduleGroup)); err != nil {
		return fmt.Errorf("amqp: schedule %s: %w", msg.UUID, err)
	}
	m := msg.Copy()
	m.Metadata[MetaScheduleTopic] = topic
	m.Metadata[MetaScheduleDue] = strconv.FormatInt(transports.DueMillis(due), 10)
	if err := t.route(ctx, m, due); err != nil {
		return fmt.Errorf("amqp: schedule %s: %w", msg.UUID, err)
	}
	t.startMover()
	return nil
}

// CancelScheduled implements transports.Scheduler: RabbitMQ cannot remove
// a message from a queue, so it always returns an error wrapping
// transports.ErrUnsupported.
func (t *Transport) CancelScheduled(context.Context, string) error {
	return fmt.Errorf("%w: amqp: a scheduled event waits in a TTL queue and cannot be removed (docs/scheduling.md)", transports.ErrUnsupported)
}

// Scheduled implements transports.Scheduler: the delay queues hold every
// event name together, so it returns an error wrapping
// transports.ErrUnsupported.
func (t *Transport) Scheduled(context.Context) ([]transports.ScheduledInfo, error) {
	return nil, fmt.Errorf("%w: amqp: scheduled events wait in delay queues shared by every event and cannot be counted per event", transports.ErrUnsupported)
}

// route sends a waiting message on: into the delay queue of the largest
// step that does not pass its due time, else to the mover's queue
// directly (the mover waits out the rest).
func (t *Transport) route(ctx context.Context, m *message.Message, due time.Time) error {
	pub, err := Marshaler{}.Marshal(unscheduled(m, false))
	if err != nil {
		return err
	}
	if left := time.Until(due); left >= scheduleMinStep {
		step := scheduleStep(left)
		return t.publishToQueue(ctx, t.tp.delayQueue(scheduleGroup, step), t.tp.delayArgs(scheduleGroup, step), pub)
	}
	return t.pool.publish(ctx, "", t.tp.groupQueue(scheduleGroup), pub)
}

// startMoverIfScheduled starts the mover, in the background, once the
// schedule queue exists: something was scheduled on this exchange. It
// looks at once and then every scheduleProbe until it exists or the
// transport closes. NewSubscriber calls it, so that every listening
// process moves events — also when every process that scheduled is gone.
func (t *Transport) startMoverIfScheduled() {
	sc := &t.sched
	sc.mu.Lock()
	if sc.started || sc.starting || sc.checking {
		sc.mu.Unlock()
		return
	}
	sc.checking = true
	if sc.stop == nil {
		sc.stop = make(chan struct{})
	}
	stop := sc.stop
	sc.wg.Add(1)
	sc.mu.Unlock()
	go func() {
		defer sc.wg.Done()
		defer func() {
			sc.mu.Lock()
			sc.checking = false
			sc.mu.Unlock()
		}()
		for !t.scheduleQueueExists() {
			select {
			case <-stop:
				return
			case <-time.After(scheduleProbe):
			}
			sc.mu.Lock()
			started := sc.started || sc.starting
			sc.mu.Unlock()
			if started || t.isClosed() {
				return
			}
		}
		t.startMover()
	}()
}

// scheduleQueueExists reports whether the schedule queue was declared.
// It asks on a channel of its own: the broker closes the channel of a
// passive declaration of a missing queue.
func (t *Transport) scheduleQueueExists() bool {
	conn, err := t.pubConn.current()
	if err != nil {
		return false
	}
	ch, err := conn.Channel()
	if err != nil {
		return false
	}
	defer func() { _ = ch.Close() }()
	_, err = ch.QueueDeclarePassive(t.tp.groupQueue(scheduleGroup), true, false, false, false, nil)
	return err == nil
}

// startMover starts the mover once per transport.
func (t *Transport) startMover() {
	sc := &t.sched
	sc.mu.Lock()
	if sc.started || sc.starting || t.isClosed() {
		sc.mu.Unlock()
		return
	}
	sc.starting = true
	sc.wg.Add(1)
	sc.mu.Unlock()
	ok := false
	defer func() {
		sc.mu.Lock()
		sc.starting, sc.started = false, ok
		sc.mu.Unlock()
		if !ok {
			sc.wg.Done()
		}
	}()
	sub, err := t.newSubscriber(transports.SubscriberConfig{
		Group: scheduleGroup, Consumer: "schedule-mover", AckTimeout: time.Minute, Concurrency: scheduleMovers,
	}, t.moverDriver())
	if err != nil {
		if !errors.Is(err, transports.ErrClosed) {
			t.log.Warn("amqp: cannot start the mover of scheduled events", slog.Any("error", err))
		}
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	msgs, err := sub.Subscribe(ctx, scheduleTopic)
	if err != nil {
		cancel()
		_ = sub.Close()
		if !errors.Is(err, transports.ErrClosed) {
			t.log.Warn("amqp: cannot start the mover of scheduled events", slog.Any("error", err))
		}
		return
	}
	ok = true
	go t.move(ctx, cancel, msgs)
}

// move handles what expires into the schedule queue until the transport
// closes (which closes the subscriber and so msgs).
func (t *Transport) move(ctx context.Context, cancel context.CancelFunc, msgs <-chan *message.Message) {
	defer t.sched.wg.Done()
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	for msg := range msgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.moveOne(ctx, msg)
		}()
	}
}

// moveOne routes one expired message on, then acknowledges it; it is
// nacked (and comes back) when that failed.
func (t *Transport) moveOne(ctx context.Context, msg *message.Message) {
	topic := msg.Metadata[MetaScheduleTopic]
	ms, err := strconv.ParseInt(msg.Metadata[MetaScheduleDue], 10, 64)
	if topic == "" || err != nil {
		t.log.Error("amqp: dropping a message without a topic or due time from the schedule queue",
			slog.String("id", msg.UUID), slog.String("topic", topic), slog.String("due", msg.Metadata[MetaScheduleDue]))
		msg.Ack()
		return
	}
	due := time.UnixMilli(ms)
	if left := time.Until(due); left > 0 && left < scheduleMinStep {
		timer := time.NewTimer(left)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			msg.Nack()
			return
		}
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.o.ConfirmTimeout)
	defer cancel()
	if time.Now().Before(due) {
		err = t.route(pctx, msg, due)
	} else {
		out := unscheduled(msg, true)
		out.SetContext(pctx)
		err = t.Publish(topic, out)
	}
	if err != nil {
		if !errors.Is(err, transports.ErrClosed) {
			t.log.Warn("amqp: could not move a scheduled event; it comes back", slog.String("id", msg.UUID), slog.Any("error", err))
		}
		transports.Info(msg).RetryAfter = time.Second
		msg.Nack()
		return
	}
	msg.Ack()
}

// stopMover waits for the mover to end: Close closed its subscriber first.
func (t *Transport) stopMover() {
	sc := &t.sched
	sc.mu.Lock()
	if sc.stop == nil {
		sc.stop = make(chan struct{})
	}
	sc.mu.Unlock()
	sc.stopOnce.Do(func() { close(sc.stop) })
	sc.wg.Wait()
}

// unscheduled copies m without the broker's dead-lettering headers and,
// when final, without the schedule's own metadata.
func unscheduled(m *message.Message, final bool) *message.Message {
	out := message.NewMessage(m.UUID, m.Payload)
	for k, v := range m.Metadata {
		if brokerHeader(k) || final && (k == MetaScheduleTopic || k == MetaScheduleDue) {
			continue
		}
		out.Metadata[k] = v
	}
	return out
}

// ScheduleQueues returns the names of every queue the scheduled events of
// a transport with the given queue prefix may use: the mover's queue, its
// dead-letter queue and the delay queues, for tools and tests that clean
// up after it.
func ScheduleQueues(queuePrefix string) []string {
	tp := topology{o: Options{QueuePrefix: queuePrefix}}
	qs := []string{tp.groupQueue(scheduleGroup), tp.deadQueue(scheduleGroup)}
	for s := scheduleMinStep; s <= 2*transports.MaxScheduleAhead; s *= 2 {
		qs = append(qs, tp.delayQueue(scheduleGroup, s))
	}
	for _, s := range DefaultRetryLadder { // a failed move is retried through these
		qs = append(qs, tp.delayQueue(scheduleGroup, s))
	}
	return qs
}
