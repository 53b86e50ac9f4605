package transports

import (
	"context"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// DeliveryInfo travels in the context of every message a subscriber hands
// out (see WithDeliveryInfo). The subscriber fills Attempt and Poison; the
// consumer may set RetryAfter before Nack.
type DeliveryInfo struct {
	// Attempt is the durable delivery count: 1 on the first delivery. It
	// survives process restarts.
	Attempt int
	// Topic is the event name the message was read from.
	Topic string
	// Group is the consumer group the message was read for.
	Group string
	// Poison is set when the broker entry could not be decoded into a
	// message; the message then carries whatever raw bytes could be read.
	// The consumer dead-letters it.
	Poison error
	// RetryAfter is set by the consumer before Nack: the delay before the
	// message is delivered again. Zero lets the transport choose.
	RetryAfter time.Duration
}

type deliveryInfoKey struct{}

// WithDeliveryInfo returns ctx carrying info.
func WithDeliveryInfo(ctx context.Context, info *DeliveryInfo) context.Context {
	return context.WithValue(ctx, deliveryInfoKey{}, info)
}

// DeliveryInfoFrom returns the info a subscriber attached to ctx, or nil.
func DeliveryInfoFrom(ctx context.Context) *DeliveryInfo {
	info, _ := ctx.Value(deliveryInfoKey{}).(*DeliveryInfo)
	return info
}

// Info returns the DeliveryInfo of msg, creating an empty one (Attempt 1)
// when the subscriber attached none.
func Info(msg *message.Message) *DeliveryInfo {
	if info := DeliveryInfoFrom(msg.Context()); info != nil {
		return info
	}
	info := &DeliveryInfo{Attempt: 1}
	msg.SetContext(WithDeliveryInfo(msg.Context(), info))
	return info
}

// DefaultRetryAfter is the redelivery delay a transport uses when the
// consumer nacks without setting RetryAfter: 1s doubled per attempt, at most 5 minutes.
func DefaultRetryAfter(attempt int) time.Duration {
	d := time.Second
	for i := 1; i < attempt && d < 5*time.Minute; i++ {
		d *= 2
	}
	return min(d, 5*time.Minute)
}
