package amqp

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/busline/busline/transports"
)

// Subscriber reads the queue of one consumer group as one member (the
// process name). Each Subscribe call starts one subscription: its own
// channel on the transport's consumer connection, consumed with a prefetch
// of at least Concurrency, resumed after a reconnection.
type Subscriber struct {
	t   *Transport
	cfg transports.SubscriberConfig

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	subs    []*subscription
	wg      sync.WaitGroup // subscription loops and settling goroutines
}

var _ message.Subscriber = (*Subscriber)(nil)

// subscribeWait bounds how long Subscribe waits for the broker while the
// consuming connection is being re-established.
const subscribeWait = 30 * time.Second

func newSubscriber(t *Transport, cfg transports.SubscriberConfig) *Subscriber {
	return &Subscriber{t: t, cfg: cfg, closing: make(chan struct{})}
}

// Subscribe declares the topology of the group for topic (exchange, group
// queue bound with topic, dead-letter queue) and starts consuming. It
// returns once the queue is bound, so that events fired afterwards reach
// the group. A group queue that does not exist yet cannot start at the
// beginning or at a time: Since other than the default is then an error
// wrapping transports.ErrUnsupported (RabbitMQ keeps no history). The
// returned channel is closed once ctx is done or the subscriber is closed;
// messages already handed out can be acked or nacked until Close.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, transports.ErrClosed
	}
	// The group must exist when Subscribe returns: wait for a connection
	// being re-established, but not forever.
	waitCtx, cancelWait := context.WithTimeout(ctx, subscribeWait)
	conn, err := s.t.subConn.wait(waitCtx)
	cancelWait()
	if err != nil {
		return nil, fmt.Errorf("amqp: subscribe %s for %s: %w", topic, s.cfg.Group, err)
	}
	if err := s.checkSince(conn); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	sub := &subscription{
		s: s, topic: topic, queue: s.t.tp.groupQueue(s.cfg.Group),
		out: make(chan *message.Message), slots: make(chan struct{}, s.cfg.Concurrency),
		ctx: runCtx, cancel: cancel,
		log: s.t.log.With(slog.String("group", s.cfg.Group), slog.String("event", topic)),
	}
	deliveries, ak, err := sub.start(conn)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("amqp: subscribe %s for %s: %w", topic, s.cfg.Group, err)
	}
	s.subs = append(s.subs, sub)
	s.wg.Add(1)
	go sub.run(deliveries, ak)
	return sub.out, nil
}

// checkSince fails for Since other than "new" when the group queue does
// not exist yet: a queue only receives events published after it is bound.
func (s *Subscriber) checkSince(conn *amqp091.Connection) error {
	if s.cfg.Since.IsNew() {
		return nil
	}
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("amqp: open channel: %w", err)
	}
	defer func() { _ = ch.Close() }()
	q := s.t.tp.groupQueue(s.cfg.Group)
	if _, err := ch.QueueDeclarePassive(q, true, false, false, false, nil); err != nil {
		if isNotFound(err) {
			return fmt.Errorf("%w: amqp: group %s cannot start at %s: a RabbitMQ queue only holds events published after it was created (create the group with the default Since first)",
				transports.ErrUnsupported, s.cfg.Group, s.cfg.Since)
		}
		return fmt.Errorf("amqp: check queue %q: %w", q, err)
	}
	return nil
}

// Close stops consuming, waits until the acks and nacks already made are
// sent to the broker, then closes the channels: deliveries handed out and
// neither acked nor nacked go back to the queue.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	subs := s.subs
	s.mu.Unlock()
	for _, sub := range subs {
		sub.cancel()
	}
	s.wg.Wait()
	for _, sub := range subs {
		sub.closeChannel()
	}
	s.t.forget(s)
	return nil
}

// subscription consumes one group queue for one topic.
type subscription struct {
	s      *Subscriber
	topic  string
	queue  string
	out    chan *message.Message
	slots  chan struct{} // one per message handed out and not settled
	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger

	mu sync.Mutex
	ch *amqp091.Channel
	ak *acker // settles the deliveries of ch
}

// start declares the topology on conn and starts a consumer on a new
// channel, with an acker for its deliveries.
func (sub *subscription) start(conn *amqp091.Connection) (<-chan amqp091.Delivery, *acker, error) {
	s := sub.s
	ch, err := conn.Channel()
	if err != nil {
		return nil, nil, fmt.Errorf("amqp: open channel: %w", err)
	}
	if err := s.t.tp.declareGroup(ch, s.cfg.Group, sub.topic); err != nil {
		_ = ch.Close()
		return nil, nil, err
	}
	prefetch := max(s.t.o.Prefetch, s.cfg.Concurrency)
	if err := ch.Qos(prefetch, 0, false); err != nil {
		_ = ch.Close()
		return nil, nil, fmt.Errorf("amqp: set prefetch %d: %w", prefetch, err)
	}
	deliveries, err := ch.Consume(sub.queue, s.cfg.Consumer, false, false, false, false, nil)
	if err != nil {
		_ = ch.Close()
		return nil, nil, fmt.Errorf("amqp: consume %q: %w", sub.queue, err)
	}
	ak := newAcker(ch, prefetch, sub.log)
	sub.mu.Lock()
	oldCh, oldAk := sub.ch, sub.ak
	sub.ch, sub.ak = ch, ak
	sub.mu.Unlock()
	if oldAk != nil {
		oldAk.close()
	}
	if oldCh != nil && !oldCh.IsClosed() {
		_ = oldCh.Close()
	}
	return deliveries, ak, nil
}

// closeChannel sends the settlements made and closes the channel: the
// deliveries not settled go back to the queue.
func (sub *subscription) closeChannel() {
	sub.mu.Lock()
	ch, ak := sub.ch, sub.ak
	sub.mu.Unlock()
	if ak != nil {
		ak.close()
	}
	if ch != nil && !ch.IsClosed() {
		_ = ch.Close()
	}
}

// run hands deliveries out until the subscription stops, consuming again
// after every reconnection (topology declared again).
func (sub *subscription) run(deliveries <-chan amqp091.Delivery, ak *acker) {
	defer sub.s.wg.Done()
	defer close(sub.out)
	for {
		if sub.pump(deliveries, ak) {
			return
		}
		sub.log.Warn("amqp: consumer channel lost; consuming again once reconnected")
		for gap := 100 * time.Millisecond; ; gap = min(2*gap, sub.s.t.o.ReconnectMax) {
			conn, err := sub.s.t.subConn.wait(sub.ctx)
			if err != nil {
				return
			}
			var serr error
			if deliveries, ak, serr = sub.start(conn); serr == nil {
				sub.log.Info("amqp: consuming again")
				break
			}
			sub.log.Warn("amqp: resume consuming", slog.Any("error", serr), slog.Duration("retry_in", gap))
			select {
			case <-sub.ctx.Done():
				return
			case <-time.After(gap):
			}
		}
	}
}

// pump hands out deliveries until the channel is lost (false) or the
// subscription stops (true).
func (sub *subscription) pump(deliveries <-chan amqp091.Delivery, ak *acker) (stopped bool) {
	for {
		select {
		case d, ok := <-deliveries:
			if !ok {
				return sub.ctx.Err() != nil
			}
			ak.track(d.DeliveryTag)
			sub.deliver(d, ak)
		case <-sub.ctx.Done():
			sub.stopConsuming(deliveries, ak)
			return true
		}
	}
}

// stopConsuming cancels the consumer and returns the deliveries the client
// buffered but never handed out.
func (sub *subscription) stopConsuming(deliveries <-chan amqp091.Delivery, ak *acker) {
	sub.mu.Lock()
	ch := sub.ch
	sub.mu.Unlock()
	if ch == nil || ch.IsClosed() {
		return
	}
	if err := ch.Cancel(sub.s.cfg.Consumer, false); err != nil {
		return
	}
	for d := range deliveries {
		ak.track(d.DeliveryTag)
		ak.nack(d.DeliveryTag)
	}
}

// deliver hands d out as a message, or settles it at once.
func (sub *subscription) deliver(d amqp091.Delivery, ak *acker) {
	s := sub.s
	n := attempt(d)
	if d.Redelivered && s.t.o.QueueType == QueueClassic {
		// A classic queue does not count redeliveries: record this one in the
		// message, so that a process crashing on it again and again still
		// reaches MaxDeliveries.
		if sub.restamp(d, n) {
			ak.ack(d.DeliveryTag)
			return
		}
	}
	msg, poison := Marshaler{}.Unmarshal(d)
	info := &transports.DeliveryInfo{Attempt: n, Topic: sub.topic, Group: s.cfg.Group, Poison: poison}
	msg.SetContext(transports.WithDeliveryInfo(context.Background(), info))
	select {
	case sub.slots <- struct{}{}:
	case <-sub.ctx.Done():
		ak.nack(d.DeliveryTag)
		return
	}
	select {
	case sub.out <- msg:
	case <-sub.ctx.Done():
		<-sub.slots
		ak.nack(d.DeliveryTag)
		return
	}
	s.wg.Add(1)
	go sub.settle(d, msg, info, ak)
}

// settle waits until the bus acks or nacks msg and tells the broker. On
// Close it still sends an ack or nack already made; a message neither
// acked nor nacked is left to return to the queue when the channel closes.
func (sub *subscription) settle(d amqp091.Delivery, msg *message.Message, info *transports.DeliveryInfo, ak *acker) {
	defer sub.s.wg.Done()
	defer func() { <-sub.slots }()
	select {
	case <-msg.Acked():
		ak.ack(d.DeliveryTag)
	case <-msg.Nacked():
		sub.retry(d, info, ak)
	case <-sub.s.closing:
		select {
		case <-msg.Acked():
			ak.ack(d.DeliveryTag)
		case <-msg.Nacked():
			sub.retry(d, info, ak)
		default:
		}
	}
}
