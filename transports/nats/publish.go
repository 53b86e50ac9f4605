package nats

import (
	"context"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/busline/busline/transports"
)

// Publish publishes each message on the subject of topic, with
// Nats-Msg-Id = the event ID, and returns once JetStream acknowledged
// every one (PubAck: the message is stored; with Replicas > 1, on a
// quorum). A message published again with the same event ID within
// DedupWindow is acknowledged as a duplicate and stored once. The
// messages of one call are in flight together; concurrent calls share the
// connection. The call ends with the first message's context (bus.Fire's
// ctx), or after Timeout when that context has no deadline; a message
// whose acknowledgement did not come may still be stored.
func (t *Transport) Publish(topic string, msgs ...*message.Message) error {
	if t.isClosed() {
		return transports.ErrClosed
	}
	if len(msgs) == 0 {
		return nil
	}
	ctx, cancel := t.timeout(msgs[0].Context())
	defer cancel()
	return t.publishEvents(ctx, topic, msgs)
}

// publishEvents is Publish within ctx, on an open or closing transport.
func (t *Transport) publishEvents(ctx context.Context, topic string, msgs []*message.Message) error {
	if _, err := t.ensureStream(ctx, topic); err != nil {
		return err
	}
	err := t.publish(ctx, t.opts.Subject(topic), msgs)
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, natsgo.ErrNoResponders) {
		// The stream was deleted under the transport: make it again, once.
		t.forgetStream(topic)
		if _, err := t.ensureStream(ctx, topic); err != nil {
			return err
		}
		err = t.publish(ctx, t.opts.Subject(topic), msgs)
	}
	return err
}

// publish sends msgs asynchronously and waits for every PubAck, until ctx
// ends: a context that ended already sends nothing, and once it ends the
// acknowledgements not in yet make one error (those messages may still be
// stored).
func (t *Transport) publish(ctx context.Context, subject string, msgs []*message.Message) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("nats: publish on %s: %w", subject, err)
	}
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	var errs []error
	for _, m := range msgs {
		nm, err := encode(subject, m)
		if err != nil {
			errs = append(errs, err)
			break
		}
		f, err := t.js.PublishMsgAsync(nm)
		if err != nil {
			errs = append(errs, fmt.Errorf("nats: publish %s on %s: %w", m.UUID, subject, err))
			break
		}
		futures = append(futures, f)
	}
	unacked := 0
	for i, f := range futures {
		select {
		case <-f.Ok():
			continue
		case err := <-f.Err():
			errs = append(errs, fmt.Errorf("nats: publish %s on %s: %w", msgs[i].UUID, subject, err))
			continue
		case <-ctx.Done():
		}
		select { // an answer that came as ctx ended counts
		case <-f.Ok():
		case err := <-f.Err():
			errs = append(errs, fmt.Errorf("nats: publish %s on %s: %w", msgs[i].UUID, subject, err))
		default:
			if unacked == 0 {
				errs = append(errs, fmt.Errorf("nats: publish %s on %s: no acknowledgement (it may still be stored): %w", msgs[i].UUID, subject, ctx.Err()))
			}
			unacked++
		}
	}
	if unacked > 1 {
		errs = append(errs, fmt.Errorf("nats: %d messages on %s without an acknowledgement in all", unacked, subject))
	}
	return errors.Join(errs...)
}
