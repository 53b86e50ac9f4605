package idempotency

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"
)

// DoneCheck returns a check of whether the group of opts has handled an
// event already (its key is done in opts.Store), for
// middleware.DeadLetterOptions.Done: an event over MaxDeliveries whose
// handling was recorded but whose acknowledgements were lost is then
// acknowledged rather than dead-lettered. An event found done is counted
// like a duplicate the middleware skips: in busline.idempotency.duplicates
// and through Options.OnDuplicate. It uses opts.Store, opts.Group,
// opts.MeterProvider and opts.OnDuplicate.
func DoneCheck(opts Options) func(ctx context.Context, msg *message.Message) (bool, error) {
	if opts.Store == nil || opts.Group == "" {
		panic("idempotency: DoneCheck needs a Store and a Group")
	}
	m := newMetrics(opts.Group, opts.MeterProvider)
	return func(ctx context.Context, msg *message.Message) (bool, error) {
		done, err := IsDone(ctx, opts.Store, Key(opts.Group, msg.UUID))
		if err != nil || !done {
			return false, err
		}
		m.duplicate(ctx)
		if opts.OnDuplicate != nil {
			opts.OnDuplicate(msg)
		}
		return true, nil
	}
}
