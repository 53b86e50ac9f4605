package redisstream

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/idempotency"
	"github.com/busline/busline/transports"
)

var _ transports.GroupRemover = (*Transport)(nil)

// RemoveGroup implements transports.GroupRemover with XGROUP DESTROY on
// every stream the group reads (its pending entries go with it). A group
// is in use when a consumer took an entry within transports.GroupIdleFor,
// a subscription of the group is open (its liveness key, refreshed every
// 15 s and deleted at Close, is set), or
// a process holds its name in the group in the transport's own dedup
// store (the bus does while it listens). The group's records in that
// store ("{prefix}dedup:{group}:{event ID}") go with it, so that a group
// made again under the same name handles events afresh; a dedup store
// elsewhere (Config.Idempotency) keeps them until their retention ends.
func (t *Transport) RemoveGroup(ctx context.Context, group string, opts transports.RemoveGroupOptions) error {
	if t.subs.Closed() {
		return transports.ErrClosed
	}
	if err := transports.CheckGroupName(group); err != nil {
		return err
	}
	events, _, err := t.inspectKeys(ctx, nil) // the event streams, as inspect finds them
	if err != nil {
		return err
	}
	var streams []string
	for _, event := range events {
		reads, err := t.groupReads(ctx, event, group)
		if err != nil {
			return err
		}
		if reads {
			streams = append(streams, t.StreamKey(event))
		}
	}
	for _, key := range streams {
		consumers, cerr := t.client.XInfoConsumers(ctx, key, group).Result()
		if cerr != nil {
			return fmt.Errorf("redisstream: remove group %s: XINFO CONSUMERS %s: %w", group, key, cerr)
		}
		for _, c := range consumers {
			if c.Idle < transports.GroupIdleFor && !opts.Force {
				return fmt.Errorf("%w: redisstream: consumer %q of group %q read %s %s ago", transports.ErrGroupInUse, c.Name, group, key, c.Idle.Round(time.Millisecond))
			}
		}
	}
	// A subscription that has read nothing for long is still seen (Redis
	// before 7.2 does not count an empty read as activity): by its
	// liveness key, and, with the transport's own dedup store (the
	// default), by the lease on its process name in the group (the bus's
	// name guard; a bus of an older version writes no liveness key).
	if !opts.Force {
		live := t.scanAll(ctx, t.liveKeyPrefix(group), &err)
		if err != nil {
			return err
		}
		if len(live) > 0 {
			return fmt.Errorf("%w: redisstream: a subscription of group %q is open (%s; the key of a killed process lapses within a minute)", transports.ErrGroupInUse, group, liveName(live[0], t.liveKeyPrefix(group)))
		}
		leases := t.scanAll(ctx, t.dedupPrefix()+idempotency.ProcessNameKey(group, ""), &err)
		if err != nil {
			return err
		}
		if len(leases) > 0 {
			return fmt.Errorf("%w: redisstream: a process holds a name in group %q (%s)", transports.ErrGroupInUse, group, strings.TrimPrefix(leases[0], t.dedupPrefix()))
		}
	}
	deadKey := t.DeadLetterKey(group)
	dead, err := t.client.Exists(ctx, deadKey).Result()
	if err != nil {
		return fmt.Errorf("redisstream: remove group %s: %w", group, err)
	}
	owners, err := t.Records(ctx, transports.RecordKindOwners)
	if err != nil {
		return err
	}
	if _, owned := owners[group]; len(streams) == 0 && !owned {
		// Nothing but dead letters, if any, is left of the group; dedup
		// records a removal of an older version left go now.
		if err := t.forgetDedup(ctx, group); err != nil {
			return err
		}
		if dead == 0 || !opts.DeadLetters {
			return transports.GroupGone("redisstream", group, dead > 0)
		}
	}
	// The dedup records go first: a bus still listening (--force) makes
	// the group again at once, from the start of the stream, and would
	// skip as duplicates the events the records still named.
	if err := t.forgetDedup(ctx, group); err != nil {
		return err
	}
	for _, key := range streams {
		if err := t.client.XGroupDestroy(ctx, key, group).Err(); err != nil {
			return fmt.Errorf("redisstream: remove group %s: XGROUP DESTROY %s: %w", group, key, err)
		}
	}
	if opts.DeadLetters && dead > 0 {
		if err := t.client.Del(ctx, deadKey).Err(); err != nil {
			return fmt.Errorf("redisstream: remove group %s: %w", group, err)
		}
	}
	return t.DeleteRecord(ctx, transports.RecordKindOwners, group)
}

// forgetDedup deletes the group's dedup records in the transport's own
// dedup store, UNLINK by UNLINK of up to 1,000 keys as SCAN finds them.
func (t *Transport) forgetDedup(ctx context.Context, group string) error {
	var err error
	keys := t.scanAll(ctx, t.dedupPrefix()+idempotency.Key(group, ""), &err)
	if err != nil {
		return err
	}
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		if err := unlinkEach(ctx, t.client, keys[:n]); err != nil {
			return fmt.Errorf("redisstream: remove group %s: its dedup records: %w", group, err)
		}
		keys = keys[n:]
	}
	return nil
}

// unlinkEach deletes keys with one UNLINK each in one pipeline: keys of
// different hash slots cannot share a command on a Cluster.
func unlinkEach(ctx context.Context, c redis.UniversalClient, keys []string) error {
	pipe := c.Pipeline()
	for _, k := range keys {
		pipe.Unlink(ctx, k)
	}
	_, err := pipe.Exec(ctx)
	return err
}
