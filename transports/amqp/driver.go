package amqp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/driver"
)

// subscribeWait bounds how long Subscribe waits for the broker while the
// consuming connection is being re-established.
const subscribeWait = 30 * time.Second

// amqpDriver is the AMQP driver of the delivery engine.
type amqpDriver struct {
	t *Transport
	// inPlace makes its subscriptions hand out a redelivery where it is,
	// never republished at the tail of the queue to count its attempt
	// (see admit), for a reader that reads no attempts: the mover of
	// scheduled events.
	inPlace bool
}

var _ driver.Driver = amqpDriver{}

// Open implements driver.Driver: it declares the topology of the group for
// topic (exchange, group queue bound with topic, dead-letter queue) and
// starts consuming on a channel of its own. A group queue that does not
// exist yet cannot start at the beginning or at a time: Since other than
// the default is then an error wrapping transports.ErrUnsupported
// (RabbitMQ keeps no history).
func (d amqpDriver) Open(ctx context.Context, topic string, cfg transports.SubscriberConfig) (driver.Subscription, error) {
	t := d.t
	t.mu.Lock()
	err := t.consumerConnLocked(cfg.Consumer)
	t.mu.Unlock()
	if err != nil {
		return nil, err
	}
	waitCtx, cancelWait := context.WithTimeout(ctx, subscribeWait)
	conn, err := t.subConn.wait(waitCtx)
	cancelWait()
	if err != nil {
		return nil, fmt.Errorf("amqp: subscribe %s for %s: %w", topic, cfg.Group, err)
	}
	s := &amqpSub{
		t: t, cfg: cfg, topic: topic, queue: t.tp.groupQueue(cfg.Group),
		prefetch:          max(t.o.Prefetch, cfg.Concurrency),
		log:               t.log.With(slog.String("group", cfg.Group), slog.String("event", topic)),
		countRedeliveries: t.o.QueueType == QueueClassic && !d.inPlace,
	}
	if err := s.checkSince(conn); err != nil {
		return nil, err
	}
	if err := s.consume(conn); err != nil {
		return nil, fmt.Errorf("amqp: subscribe %s for %s: %w", topic, cfg.Group, err)
	}
	return s, nil
}

// amqpSub consumes the queue of one group for one topic. A delivery's
// AckID is its channel generation and delivery tag: after a reconnection
// the tags of the old channel mean nothing (the broker returned those
// deliveries to the queue).
type amqpSub struct {
	t        *Transport
	cfg      transports.SubscriberConfig
	topic    string
	queue    string
	prefetch int
	log      *slog.Logger
	// countRedeliveries: a redelivery (classic queues flag only one) is
	// republished at the tail with its attempt count (see admit).
	countRedeliveries bool

	// rmu is held by Receive (one at a time) while it reads deliveries.
	rmu        sync.Mutex
	deliveries <-chan amqp091.Delivery
	wait       *time.Timer // Receive's wait for a first delivery, under rmu

	mu     sync.Mutex
	ch     *amqp091.Channel
	gen    uint64
	tr     tracker
	held   map[tagID]amqp091.Delivery // received, not settled
	closed bool
}

type tagID struct {
	gen uint64
	tag uint64
}

func (s *amqpSub) Capabilities() driver.Capabilities {
	return driver.Capabilities{AckLinger: ackLinger, AckWindow: s.prefetch}
}

// checkSince fails for Since other than "new" when the group queue does
// not exist yet: a queue only receives events published after it is bound.
func (s *amqpSub) checkSince(conn *amqp091.Connection) error {
	if s.cfg.Since.IsNew() {
		return nil
	}
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("amqp: open channel: %w", err)
	}
	defer func() { _ = ch.Close() }()
	if _, err := ch.QueueDeclarePassive(s.queue, true, false, false, false, nil); err != nil {
		if isNotFound(err) {
			return fmt.Errorf("%w: amqp: group %s cannot start at %s: a RabbitMQ queue only holds events published after it was created (create the group with the default Since first)",
				transports.ErrUnsupported, s.cfg.Group, s.cfg.Since)
		}
		return fmt.Errorf("amqp: check queue %q: %w", s.queue, err)
	}
	return nil
}

// consume declares the topology on conn and starts a consumer on a new
// channel with its prefetch (at least Concurrency).
func (s *amqpSub) consume(conn *amqp091.Connection) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("amqp: open channel: %w", err)
	}
	if err := s.t.tp.declareGroup(ch, s.cfg.Group, s.topic); err != nil {
		_ = ch.Close()
		return err
	}
	if err := ch.Qos(s.prefetch, 0, false); err != nil {
		_ = ch.Close()
		return fmt.Errorf("amqp: set prefetch %d: %w", s.prefetch, err)
	}
	deliveries, err := ch.Consume(s.queue, s.cfg.Consumer, false, false, false, false, nil)
	if err != nil {
		_ = ch.Close()
		return fmt.Errorf("amqp: consume %q: %w", s.queue, err)
	}
	s.mu.Lock()
	old := s.ch
	s.ch, s.deliveries = ch, deliveries
	s.gen++
	s.tr = tracker{}
	s.held = map[tagID]amqp091.Delivery{}
	s.mu.Unlock()
	if old != nil && !old.IsClosed() {
		_ = old.Close()
	}
	return nil
}

// errChannelLost is the broken read of a consumer channel that closed.
var errChannelLost = errors.New("amqp: consumer channel lost")

// Receive implements driver.Subscription: it waits up to wait for the
// first delivery and takes up to n of those the client holds. After the
// channel was lost it consumes again once the connection is back.
func (s *amqpSub) Receive(ctx context.Context, n int, wait time.Duration) ([]*driver.Message, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.mu.Lock()
	closed, ch := s.closed, s.ch
	s.mu.Unlock()
	if closed {
		return nil, transports.ErrClosed
	}
	if ch == nil || ch.IsClosed() {
		conn, err := s.t.subConn.wait(ctx)
		if err != nil {
			return nil, err
		}
		if err := s.consume(conn); err != nil {
			return nil, err
		}
		s.mu.Lock()
		ch = s.ch
		s.mu.Unlock()
		s.log.Info("amqp: consuming again")
	}
	if s.wait == nil {
		s.wait = time.NewTimer(wait)
	} else {
		s.wait.Reset(wait) // stopped: no stale tick (Go 1.23 timers)
	}
	defer s.wait.Stop()
	var first amqp091.Delivery
	select {
	case d, ok := <-s.deliveries:
		if !ok {
			return nil, s.lostChannel(ch)
		}
		first = d
	case <-s.wait.C:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	out := make([]*driver.Message, 0, n)
	out = s.admit(out, first)
	for len(out) < n {
		select {
		case d, ok := <-s.deliveries:
			if !ok {
				return out, nil // the next Receive reports the loss
			}
			out = s.admit(out, d)
			continue
		default:
		}
		break
	}
	return out, nil
}

// lostChannel reports the end of the deliveries of ch. When the broker
// cancelled the consumer and left the channel open (its queue was deleted,
// say), ch is closed, so that the next Receive consumes again (declaring
// the queue anew) instead of finding the same ended deliveries forever.
func (s *amqpSub) lostChannel(ch *amqp091.Channel) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return transports.ErrClosed
	}
	if ch != nil && !ch.IsClosed() {
		_ = ch.Close()
	}
	s.log.Warn("amqp: consumer channel lost; consuming again once reconnected")
	return errChannelLost
}

// admit tracks d and appends its message to out. A redelivery on a
// classic queue (which flags only one) is first stamped with its attempt
// count: it is republished at the tail of the queue and acked, so that a
// process crashing on it again and again still reaches MaxDeliveries.
// A driver with inPlace (the schedule mover's) hands redeliveries out
// where they are, at the head of the queue: the mover never reads
// attempts, and at the tail the events a killed mover held, the most
// overdue, would wait for every event that expired meanwhile.
func (s *amqpSub) admit(out []*driver.Message, d amqp091.Delivery) []*driver.Message {
	s.mu.Lock()
	id := tagID{s.gen, d.DeliveryTag}
	s.tr.track(d.DeliveryTag)
	s.held[id] = d
	s.mu.Unlock()
	n := attempt(d)
	topic := s.firedAs(d)
	if d.Redelivered && s.countRedeliveries {
		if s.republish(context.Background(), d, 0, n) == nil {
			// Acked at once: the delivery holds a prefetch slot.
			s.settle(id, stateAck)
			s.mu.Lock()
			_ = s.flushLocked()
			s.mu.Unlock()
			return out
		}
	}
	msg, poison := Marshaler{}.Unmarshal(d)
	return append(out, &driver.Message{
		AckID: id, Topic: topic, Message: msg, Poison: poison,
		Attempts: n - 1, Recorded: true,
	})
}

// firedAs is the event name d was fired as: the x-busline-topic header of
// a republished message, else the routing key of a message that came
// through the exchange; "" when neither says.
func (s *amqpSub) firedAs(d amqp091.Delivery) string {
	if h := headerString(d.Headers[HeaderTopic]); h != "" {
		return h
	}
	if d.Exchange == s.t.o.Exchange {
		return d.RoutingKey
	}
	return ""
}

// Pending implements driver.Subscription: RabbitMQ returns unacknowledged
// deliveries to the queue when a consumer goes; there is no pending list.
func (s *amqpSub) Pending(context.Context, string, int) ([]*driver.Message, string, error) {
	return nil, "", nil
}

// Claim implements driver.Subscription: nothing to claim (see Pending).
func (s *amqpSub) Claim(context.Context, time.Duration, string, int) ([]*driver.Message, string, error) {
	return nil, "", nil
}

// KeepAlive implements driver.Subscription: deliveries stay with the
// consumer as long as its channel lives.
func (s *amqpSub) KeepAlive(context.Context, []driver.AckID) error { return nil }

// Record implements driver.Subscription: deliveries carry their attempt
// (the x-busline-attempt header and the broker's redelivery facts).
func (s *amqpSub) Record(context.Context, []driver.Attempt) error { return nil }

// Ack implements driver.Subscription: it sends the acks at once, as few
// frames as the tracker can make of them (the engine holds them back to
// batch them, see ackLinger); acks of a lost channel are dropped (the
// broker returned those deliveries to the queue).
func (s *amqpSub) Ack(_ context.Context, ids []driver.AckID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		tid := id.(tagID)
		if tid.gen == s.gen {
			delete(s.held, tid)
			s.tr.mark(tid.tag, stateAck)
		}
	}
	return s.flushLocked()
}

func (s *amqpSub) settle(id tagID, st ackState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id.gen == s.gen {
		delete(s.held, id)
		s.tr.mark(id.tag, st)
	}
}

// flushLocked sends the settlements marked so far. When there may be more
// than one frame to send (a multiple ack and single acks or nacks), the
// consumer connection is corked around them: one write system call for
// the flush rather than one per frame.
func (s *amqpSub) flushLocked() error {
	if s.ch == nil {
		return nil
	}
	if s.tr.settled > 1 {
		if c := s.t.consumerCork(); c != nil {
			c.cork()
			defer func() { _ = c.uncork() }()
		}
	}
	if err := s.tr.flush(s.ch); err != nil {
		s.log.Debug("amqp: settle failed; the broker returns the deliveries to the queue", slog.Any("error", err))
	}
	return nil
}

// Nack implements driver.Subscription: each delivery is republished with
// the attempt number of its next delivery (Attempts+1) and the event it
// was fired as, into the delay queue of the smallest retry step that is at
// least its Delay (into the group queue at once when Delay is 0), then
// acked. A delivery that cannot be republished goes back to the queue
// (basic.nack), which the broker counts as a delivery.
func (s *amqpSub) Nack(ctx context.Context, nacks []driver.Nack) error {
	for _, n := range nacks {
		id := n.AckID.(tagID)
		s.mu.Lock()
		d, ok := s.held[id]
		s.mu.Unlock()
		if !ok {
			continue
		}
		var step time.Duration
		if n.Delay > 0 {
			step = s.t.tp.step(n.Delay)
		}
		if err := s.republish(ctx, d, step, n.Attempts+1); err != nil {
			s.log.Warn("amqp: could not delay the redelivery; returning the event to the queue",
				slog.Duration("delay", step), slog.Any("error", err))
			s.settle(id, stateNack)
			continue
		}
		s.settle(id, stateAck)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushLocked()
}

// republish publishes d again (see again): into the delay queue of step, or
// the group queue when step is 0.
func (s *amqpSub) republish(ctx context.Context, d amqp091.Delivery, step time.Duration, attempt int) error {
	pub := s.again(d, attempt)
	ctx, cancel := context.WithTimeout(ctx, s.t.o.ConfirmTimeout)
	defer cancel()
	if step <= 0 {
		return s.t.pool.publish(ctx, "", s.queue, pub)
	}
	return s.t.publishToQueue(ctx, s.t.tp.delayQueue(s.cfg.Group, step), s.t.tp.delayArgs(s.cfg.Group, step), pub)
}

// again is the copy of d to publish again, with the attempt number of its
// next delivery and the event it was fired as (the subscription's event
// when d does not say).
func (s *amqpSub) again(d amqp091.Delivery, attempt int) amqp091.Publishing {
	topic := s.firedAs(d)
	if topic == "" {
		topic = s.topic
	}
	return republishing(d, map[string]string{HeaderAttempt: strconv.Itoa(attempt), HeaderTopic: topic})
}

// attempt is the delivery number of d: the x-busline-attempt header (1 when
// absent) plus the times the broker returned it to the queue since it was
// published (x-delivery-count on quorum queues; the Redelivered flag, at
// most one, on classic queues).
func attempt(d amqp091.Delivery) int {
	n, ok := headerInt(d.Headers[HeaderAttempt])
	if !ok || n < 1 {
		n = 1
	}
	n = min(n, maxAttempt)
	if c, ok := headerInt(d.Headers["x-delivery-count"]); ok && c > 0 {
		return n + min(c, maxAttempt)
	}
	if d.Redelivered {
		n++
	}
	return n
}

// maxAttempt caps header values so that a forged or corrupt count cannot
// wrap around to a negative attempt (which would never reach MaxDeliveries).
const maxAttempt = 1 << 30

// Close implements driver.Subscription: it cancels the consumer, returns
// the deliveries the client received and never handed out to the queue
// with their attempt count unchanged (republished, not requeued, which
// would count them), sends the settlements made and closes the channel:
// deliveries neither acked nor nacked go back to the queue.
func (s *amqpSub) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ch, deliveries, gen := s.ch, s.deliveries, s.gen
	s.mu.Unlock()
	if ch == nil || ch.IsClosed() {
		return nil
	}
	if err := ch.Cancel(s.cfg.Consumer, false); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), s.t.o.ConfirmTimeout)
		s.returnUnread(ctx, gen, deliveries)
		cancel()
	}
	s.mu.Lock()
	_ = s.flushLocked()
	s.mu.Unlock()
	// A channel the broker or a closing connection closed meanwhile has
	// nothing left to close: its deliveries went back to the queue.
	if err := ch.Close(); err != nil && !errors.Is(err, amqp091.ErrClosed) {
		return fmt.Errorf("amqp: close consumer channel: %w", err)
	}
	return nil
}

// returnChunk is how many unread deliveries Close returns to the queue per
// round trip.
const returnChunk = 256

// returnUnread returns to the queue the deliveries of channel generation
// gen the client received and never handed out, until deliveries ends
// (the consumer was cancelled, so every one left is in the client): each
// is republished with its attempt count unchanged and acked. They go in
// chunks, published together and settled before the next chunk, so that
// thousands of them (a large prefetch) take a few round trips, and a Close
// cut short (closeBudget) leaves at most one chunk both republished and
// back in the queue. A delivery the broker did not confirm republished is
// nacked: the broker puts it back, which counts a delivery. ctx bounds the
// whole return.
func (s *amqpSub) returnUnread(ctx context.Context, gen uint64, deliveries <-chan amqp091.Delivery) {
	chunk := make([]amqp091.Delivery, 0, returnChunk)
	for d := range deliveries {
		chunk = append(chunk[:0], d)
		for len(chunk) < returnChunk {
			d, ok := <-deliveries
			if !ok {
				break
			}
			chunk = append(chunk, d)
		}
		s.returnChunk(ctx, gen, chunk)
	}
}

// returnChunk republishes the deliveries of chunk to the group queue in one
// publish and settles each: acked when the broker confirmed its copy,
// nacked otherwise.
func (s *amqpSub) returnChunk(ctx context.Context, gen uint64, chunk []amqp091.Delivery) {
	s.mu.Lock()
	if gen == s.gen { // tracked at once, in delivery order
		for _, d := range chunk {
			s.tr.track(d.DeliveryTag)
		}
	}
	s.mu.Unlock()
	pubs := make([]amqp091.Publishing, len(chunk))
	for i, d := range chunk {
		pubs[i] = s.again(d, attempt(d))
	}
	confirmed, err := s.t.pool.publishEach(ctx, "", s.queue, pubs...)
	if err != nil {
		s.log.Warn("amqp: could not return unread deliveries to the queue; the broker puts them back", slog.Int("deliveries", len(chunk)), slog.Any("error", err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != s.gen {
		return // a channel lost meanwhile: the broker put its deliveries back
	}
	for i, d := range chunk {
		st := stateNack
		if i < len(confirmed) && confirmed[i] {
			st = stateAck
		}
		delete(s.held, tagID{gen, d.DeliveryTag})
		s.tr.mark(d.DeliveryTag, st)
	}
	_ = s.flushLocked()
}

// Driver returns the transport's driver for the delivery engine, for the
// driver tier of transports/transporttest and for tools.
func (t *Transport) Driver() driver.Driver { return amqpDriver{t: t} }

// moverDriver is the driver of the mover of scheduled events: it reads no
// attempts, so redeliveries stay where they are (amqpDriver.inPlace).
func (t *Transport) moverDriver() amqpDriver { return amqpDriver{t: t, inPlace: true} }
