package middleware

import (
	"math/rand/v2"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/busline/busline/transports"
)

// RetryPolicy says how a failed handler is retried: first in process, then
// through the transport with a delay.
type RetryPolicy struct {
	// Tries is the number of handler calls per delivery, including the
	// first (default 3). 1 turns in-process retries off.
	Tries int
	// InitialInterval is the wait before the first in-process retry (default 100ms).
	InitialInterval time.Duration
	// MaxInterval caps the in-process wait (default 2s).
	MaxInterval time.Duration
	// Multiplier grows the wait after each try (default 2).
	Multiplier float64
	// Jitter randomises each wait by ± this fraction (default 0.2; negative: none).
	Jitter float64
	// RedeliveryDelay is the delay the transport waits before delivering
	// the event again once the in-process tries are used up, given the
	// delivery's attempt number (default transports.DefaultRetryAfter:
	// 1s doubling, at most 5 minutes).
	RedeliveryDelay func(attempt int) time.Duration
}

// defaultRetry holds what WithDefaults fills in.
var defaultRetry = RetryPolicy{
	Tries: 3, InitialInterval: 100 * time.Millisecond, MaxInterval: 2 * time.Second,
	Multiplier: 2, Jitter: 0.2, RedeliveryDelay: transports.DefaultRetryAfter,
}

// Or returns p with every unset field taken from base, field by field:
// Tries ≤ 0, intervals ≤ 0, Multiplier < 1, Jitter 0 or ≥ 1 (a negative
// Jitter is a value: no jitter) and a nil RedeliveryDelay are unset. A
// listener's own policy over its service's is p.Or(service).
func (p RetryPolicy) Or(base RetryPolicy) RetryPolicy {
	if p.Tries <= 0 {
		p.Tries = base.Tries
	}
	if p.InitialInterval <= 0 {
		p.InitialInterval = base.InitialInterval
	}
	if p.MaxInterval <= 0 {
		p.MaxInterval = base.MaxInterval
	}
	if p.Multiplier < 1 {
		p.Multiplier = base.Multiplier
	}
	if p.Jitter == 0 || p.Jitter >= 1 {
		p.Jitter = base.Jitter
	}
	if p.RedeliveryDelay == nil {
		p.RedeliveryDelay = base.RedeliveryDelay
	}
	return p
}

// WithDefaults returns p with every unset field (see Or) set to its
// default.
func (p RetryPolicy) WithDefaults() RetryPolicy {
	p = p.Or(defaultRetry)
	if p.Jitter < 0 {
		p.Jitter = -1 // no jitter; stays so when defaults are applied again
	}
	return p
}

// Retry calls the handler up to p.Tries times with exponential backoff and
// jitter while it fails with an error not marked Permanent. When the tries
// are used up it returns the last error and sets the delivery's RetryAfter
// to p.RedeliveryDelay(attempt), so the transport delivers the event again
// after that delay instead of at once. Waiting stops early when the
// message's context is done. Each retry increments DeliveryInfo.Retries
// and is recorded on the delivery's span, if one is recording.
func Retry(p RetryPolicy) message.HandlerMiddleware {
	p = p.WithDefaults()
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			wait := p.InitialInterval
			for try := 1; ; try++ {
				out, err := h(msg)
				if err == nil || IsPermanent(err) {
					return out, err
				}
				if try >= p.Tries {
					return out, redeliverLater(msg, p, err)
				}
				recordRetry(msg, try, err)
				if !sleep(msg, jitter(wait, p.Jitter)) {
					return out, redeliverLater(msg, p, err)
				}
				transports.Info(msg).Retries++
				wait = min(time.Duration(float64(wait)*p.Multiplier), p.MaxInterval)
			}
		}
	}
}

// redeliverLater sets the delivery's RetryAfter, unless an inner
// middleware chose one, and returns err.
func redeliverLater(msg *message.Message, p RetryPolicy, err error) error {
	info := transports.Info(msg)
	if info.RetryAfter <= 0 {
		info.RetryAfter = p.RedeliveryDelay(info.Attempt)
	}
	return err
}

// recordRetry adds a failed try that is about to be retried in process to
// the span of the delivery, when one is recording (the tracing middleware
// starts it): an exception event with the try number. Without a recording
// span it costs a context lookup, on the failure path only.
func recordRetry(msg *message.Message, try int, err error) {
	span := trace.SpanFromContext(msg.Context())
	if !span.IsRecording() {
		return
	}
	span.RecordError(err, trace.WithAttributes(attribute.Int("busline.try", try)))
}

func jitter(d time.Duration, frac float64) time.Duration {
	if frac <= 0 {
		return d
	}
	return time.Duration(float64(d) * (1 + frac*(2*rand.Float64()-1)))
}

// sleep waits d or until the message context is done; it reports whether it waited the whole time.
func sleep(msg *message.Message, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-msg.Context().Done():
		return false
	}
}
