package nats

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/busline/busline/transports"
)

var _ transports.GroupRemover = (*Transport)(nil)

// RemoveGroup implements transports.GroupRemover: it deletes the group's
// durable consumer on the stream of every event it reads (what it had not
// acknowledged goes with it), the held records and attempt corrections of
// its processes and, with opts.DeadLetters, its dead letters. A consumer
// with pull requests waiting, messages out, or a delivery within
// transports.GroupIdleFor is in use.
func (t *Transport) RemoveGroup(ctx context.Context, group string, opts transports.RemoveGroupOptions) error {
	if t.isClosed() {
		return transports.ErrClosed
	}
	if err := transports.CheckGroupName(group); err != nil {
		return err
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
		// Read by a process: pull requests wait (an idle reader), messages
		// are out (a busy one), or one was delivered within a minute.
		info := c.CachedInfo()
		last := info.Delivered.Last
		if !opts.Force && (info.NumWaiting > 0 || info.NumAckPending > 0 || (last != nil && time.Since(*last) < transports.GroupIdleFor)) {
			why := fmt.Sprintf("%d pull requests waiting and %d messages out", info.NumWaiting, info.NumAckPending)
			if info.NumWaiting == 0 && info.NumAckPending == 0 {
				ago := time.Since(*last)
				why = fmt.Sprintf("a delivery %s ago (a group is taken as unused %s after its last delivery)", ago.Round(time.Second), transports.GroupIdleFor)
			}
			return fmt.Errorf("%w: nats: the consumer of %q on %s has %s", transports.ErrGroupInUse, group, stream, why)
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
	if _, owned := owners[group]; len(consumers) == 0 && !owned {
		// Nothing but dead letters, if any, is left of the group.
		if dead == 0 || !opts.DeadLetters {
			return transports.GroupGone("nats", group, dead > 0)
		}
	}
	for _, stream := range consumers {
		if err := t.js.DeleteConsumer(lctx, stream, ConsumerName(group)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("nats: remove group %s: delete consumer on %s: %w", group, stream, err)
		}
	}
	// The held sets of its processes ("{stream}/{group}/{process}") and
	// its attempt corrections ("{stream}/{group}/{seq}"): a group made
	// again under the name must not inherit them.
	for _, kind := range []string{kindHeld, kindAttempts} {
		records, err := t.Records(ctx, kind)
		if err != nil {
			continue
		}
		for key := range records {
			if strings.Contains(key, "/"+group+"/") {
				_ = t.DeleteRecord(ctx, kind, key)
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
