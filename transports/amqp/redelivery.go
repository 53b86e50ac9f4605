package amqp

import (
	"context"
	"log/slog"
	"strconv"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/busline/busline/transports"
)

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

// restamp republishes a redelivered message at the tail of the group queue
// with its attempt number in x-busline-attempt; the caller then acks the
// original. False when that failed: the delivery is then handed out as it is.
func (sub *subscription) restamp(d amqp091.Delivery, n int) bool {
	pub := republishing(d, map[string]string{HeaderAttempt: strconv.Itoa(n)})
	ctx, cancel := context.WithTimeout(context.Background(), sub.s.t.o.ConfirmTimeout)
	defer cancel()
	if err := sub.s.t.pool.publish(ctx, "", sub.queue, pub); err != nil {
		sub.log.Debug("amqp: could not record the redelivery count", slog.Any("error", err))
		return false
	}
	return true
}

// retry republishes d into the delay queue for info.RetryAfter (rounded up
// to the retry ladder) with the next attempt number, then acks it. If that
// fails the delivery is nacked back to the queue, which counts as a
// delivery too.
func (sub *subscription) retry(d amqp091.Delivery, info *transports.DeliveryInfo, ak *acker) {
	s := sub.s
	delay := info.RetryAfter
	if delay <= 0 {
		delay = transports.DefaultRetryAfter(info.Attempt)
	}
	step := s.t.tp.step(delay)
	queue := s.t.tp.delayQueue(s.cfg.Group, step)
	pub := republishing(d, map[string]string{
		HeaderAttempt: strconv.Itoa(info.Attempt + 1),
		HeaderTopic:   sub.topic,
	})
	ctx, cancel := context.WithTimeout(context.Background(), s.t.o.ConfirmTimeout)
	defer cancel()
	if err := s.t.publishToQueue(ctx, queue, s.t.tp.delayArgs(s.cfg.Group, step), pub); err != nil {
		sub.log.Warn("amqp: could not delay the redelivery; returning the event to the queue",
			slog.String("delay_queue", queue), slog.Any("error", err))
		ak.nack(d.DeliveryTag)
		return
	}
	ak.ack(d.DeliveryTag)
}
