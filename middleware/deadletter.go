package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/busline/busline/transports"
)

// DeadLetterSink stores an event the group gives up on. The bus passes the
// transport's DeadLetterer.
type DeadLetterSink func(ctx context.Context, msg *message.Message, reason string, attempts int) error

// DeadLetterOptions configure DeadLetter.
type DeadLetterOptions struct {
	// MaxDeliveries is the number of deliveries after which a failing event
	// is dead-lettered (default 10).
	MaxDeliveries int
	// Sink stores dead letters. Required.
	Sink DeadLetterSink
	// Logger receives a warning per dead letter.
	Logger *slog.Logger
	// OnDeadLetter is called after an event was dead-lettered (for metrics and tests).
	OnDeadLetter func(msg *message.Message, reason string, attempts int)
	// Done, when set, reports whether the group already handled the event
	// (its idempotency record is done). An event over MaxDeliveries that is
	// done is acknowledged, not dead-lettered: it was handled, and only its
	// acknowledgements were lost (the process crashed after the handler,
	// for example while another event killed it). An error of Done leaves
	// the decision to dead-letter as without it.
	Done func(ctx context.Context, msg *message.Message) (bool, error)
}

// DeadLetter sends an event to the dead-letter destination and returns nil
// (so that it is acknowledged) when:
//   - the transport could not decode it (DeliveryInfo.Poison),
//   - it was already delivered more than MaxDeliveries times (a handler that
//     crashed the process on every delivery, for example) — without running it,
//   - the handler failed with an error marked Permanent,
//   - the handler failed on the MaxDeliveries-th delivery.
//
// Any other error is returned so the event is redelivered; an error that
// matches transports.ErrNotAttempted (another consumer holds the event) is
// never a reason to dead-letter, and neither is a failure after the
// delivery's own context ended (shutdown). If storing the
// dead letter fails, that error is returned: the event is never dropped.
// A dead-lettered delivery gets DeliveryInfo.Outcome OutcomeDeadLettered.
func DeadLetter(opts DeadLetterOptions) message.HandlerMiddleware {
	if opts.Sink == nil {
		panic("middleware: DeadLetter needs a Sink")
	}
	if opts.MaxDeliveries <= 0 {
		opts.MaxDeliveries = 10
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return func(h message.HandlerFunc) message.HandlerFunc {
		recovered := Recover(h) // a panic on the last delivery is dead-lettered too
		return func(msg *message.Message) ([]*message.Message, error) {
			info := transports.Info(msg)
			var reason string
			var cause error
			switch {
			case info.Poison != nil:
				reason = "poison: " + info.Poison.Error()
			case info.Attempt > opts.MaxDeliveries:
				if handledBefore(msg, opts) {
					info.Outcome = transports.OutcomeDuplicateSkipped
					return nil, nil
				}
				reason = fmt.Sprintf("exceeded %d deliveries without an acknowledgement (delivery %d was not handed to the handler)", opts.MaxDeliveries, info.Attempt)
			default:
				out, err := recovered(msg)
				if err == nil {
					return out, nil
				}
				if !IsPermanent(err) && (info.Attempt < opts.MaxDeliveries || errors.Is(err, transports.ErrNotAttempted)) {
					return out, err
				}
				if msg.Context().Err() != nil {
					// The delivery's context ended (the bus is shutting
					// down): the failure says nothing about the event.
					return out, err
				}
				reason, cause = err.Error(), err
			}
			reason = cutReason(reason)
			ctx, cancel := context.WithTimeout(context.WithoutCancel(msg.Context()), 10*time.Second)
			defer cancel()
			if err := opts.Sink(ctx, msg, reason, info.Attempt); err != nil {
				// The event is redelivered after its delay and tried
				// again: never dropped, but never done either until the
				// dead-letter destination takes it.
				opts.Logger.LogAttrs(ctx, slog.LevelError, "dead-lettering an event failed; it will be delivered again",
					slog.String("event_id", msg.UUID), slog.String("event", info.Topic), slog.String("group", info.Group),
					slog.Int("attempt", info.Attempt), slog.String("reason", reason), slog.Any("error", err))
				return nil, fmt.Errorf("dead-letter event %s: %w (original failure: %s)", msg.UUID, err, reason)
			}
			info.Outcome = transports.OutcomeDeadLettered
			recordDeadLetter(msg, reason, cause)
			opts.Logger.LogAttrs(ctx, slog.LevelWarn, "event dead-lettered",
				slog.String("event_id", msg.UUID), slog.String("event", info.Topic), slog.String("group", info.Group),
				slog.Int("attempt", info.Attempt), slog.String("reason", reason))
			if opts.OnDeadLetter != nil {
				opts.OnDeadLetter(msg, reason, info.Attempt)
			}
			return nil, nil
		}
	}
}

// cutReason keeps a dead letter's reason within
// transports.MaxReasonBytes (a panic's stack trace can be longer), on a
// UTF-8 boundary, and says how much was cut.
func cutReason(reason string) string {
	if len(reason) <= transports.MaxReasonBytes {
		return reason
	}
	const note = " … (%d bytes cut)"
	keep := transports.MaxReasonBytes - len(note) - 8
	for keep > 0 && !utf8.RuneStart(reason[keep]) {
		keep--
	}
	return reason[:keep] + fmt.Sprintf(note, len(reason)-keep)
}

// handledBefore reports whether opts.Done says the group handled msg
// already; false when there is no Done or it failed.
func handledBefore(msg *message.Message, opts DeadLetterOptions) bool {
	if opts.Done == nil {
		return false
	}
	done, err := opts.Done(msg.Context(), msg)
	if err != nil {
		opts.Logger.Warn("could not tell whether an event over MaxDeliveries was handled before; dead-lettering it",
			slog.String("event_id", msg.UUID), slog.Any("error", err))
		return false
	}
	if done {
		opts.Logger.Info("event over MaxDeliveries was handled before (its acknowledgements were lost); acknowledged, not dead-lettered",
			slog.String("event_id", msg.UUID))
	}
	return done
}

// recordDeadLetter notes the dead letter on the delivery's span, when one is
// recording: the handler's error as an exception, and a "dead_lettered"
// event with the reason.
func recordDeadLetter(msg *message.Message, reason string, cause error) {
	span := trace.SpanFromContext(msg.Context())
	if !span.IsRecording() {
		return
	}
	if cause != nil {
		span.RecordError(cause)
	}
	span.AddEvent("dead_lettered", trace.WithAttributes(attribute.String("busline.dead_letter.reason", reason)))
}
