package nats

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/busline/busline/transports"
)

var _ transports.GroupRemover = (*Transport)(nil)

// RemoveGroup implements transports.GroupRemover: it deletes the group's
// durable consumer on the stream of every event it reads (what it had not
// acknowledged goes with it), the held records of its processes and,
// with opts.DeadLetters, its dead letters. A consumer with pull requests
// waiting (a process reading it) is in use.
func (t *Transport) RemoveGroup(ctx context.Context, group string, opts transports.RemoveGroupOptions) error {
	if t.isClosed() {
		return transports.ErrClosed
	}
	if err := checkDeadGroup(group); err != nil {
		return err
	}
	lctx, cancel := t.timeout(ctx)
	defer cancel()
	lister := t.js.ListStreams(lctx, jetstream.WithStreamListSubject(t.opts.Prefix+".>"))
	var streams []string
	for si := range lister.Info() {
		if _, ok := t.opts.eventOfStream(si.Config.Name); ok {
			streams = append(streams, si.Config.Name)
		}
	}
	if err := lister.Err(); err != nil {
		return fmt.Errorf("nats: remove group %s: list streams: %w", group, err)
	}
	var consumers []string // streams with the group's consumer
	for _, stream := range streams {
		c, err := t.js.Consumer(lctx, stream, ConsumerName(group))
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("nats: remove group %s: consumer on %s: %w", group, stream, err)
		}
		if n := c.CachedInfo().NumWaiting; n > 0 && !opts.Force {
			return fmt.Errorf("%w: nats: %d pull requests wait on the consumer of %q on %s", transports.ErrGroupInUse, n, group, stream)
		}
		consumers = append(consumers, stream)
	}
	owners, err := t.Records(ctx, transports.RecordKindOwners)
	if err != nil {
		return err
	}
	dead := 0
	if s, err := t.deadStream(ctx); err == nil && s != nil {
		counts, err := t.deadCounts(ctx, s, t.opts.DeadSubject(group))
		if err != nil {
			return err
		}
		dead = int(counts[t.opts.DeadSubject(group)])
	}
	if _, owned := owners[group]; len(consumers) == 0 && dead == 0 && !owned {
		return fmt.Errorf("%w: nats: no consumer group %q", transports.ErrNotFound, group)
	}
	for _, stream := range consumers {
		if err := t.js.DeleteConsumer(lctx, stream, ConsumerName(group)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("nats: remove group %s: delete consumer on %s: %w", group, stream, err)
		}
	}
	if held, err := t.Records(ctx, kindHeld); err == nil {
		for key := range held {
			if strings.Contains(key, "/"+group+"/") { // "{stream}/{group}/{process}"
				_ = t.DeleteRecord(ctx, kindHeld, key)
			}
		}
	}
	if opts.DeadLetters && dead > 0 {
		if _, err := t.PurgeDeadLetters(ctx, group); err != nil {
			return err
		}
	}
	return t.DeleteRecord(ctx, transports.RecordKindOwners, group)
}
