package memory

import (
	"context"
	"errors"
	"fmt"

	"github.com/busline/busline/transports"
)

var _ transports.GroupRemover = (*Transport)(nil)

// RemoveGroup implements transports.GroupRemover: the group leaves the
// stream of every event it reads, with its pending entries. A group with
// a live subscription is in use.
func (t *Transport) RemoveGroup(ctx context.Context, group string, opts transports.RemoveGroupOptions) error {
	if t.subs.Closed() {
		return transports.ErrClosed
	}
	if err := transports.CheckGroupName(group); err != nil {
		return err
	}
	err := t.broker.removeGroup(group, opts.Force)
	if errors.Is(err, errNoGroup) {
		// Nothing but dead letters, if any, is left of the group.
		dead := len(t.broker.DeadLetters(group, 1)) > 0
		if !dead || !opts.DeadLetters {
			return transports.GroupGone("memory", group, dead)
		}
		err = nil
	}
	if err != nil {
		return err
	}
	if opts.DeadLetters {
		t.broker.PurgeDeadLetters(group)
	}
	return t.DeleteRecord(ctx, transports.RecordKindOwners, group)
}

var errNoGroup = errors.New("no such group")

// removeGroup deletes group from every stream, unless one of its
// consumers has a live subscription and force is false.
func (b *Broker) removeGroup(group string, force bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	found := false
	for topic, s := range b.streams {
		g := s.groups[group]
		if g == nil {
			continue
		}
		found = true
		for _, c := range g.consumers {
			if c.open > 0 && !force {
				return fmt.Errorf("%w: memory: consumer %q of group %q reads %s", transports.ErrGroupInUse, c.name, group, topic)
			}
		}
	}
	if !found {
		return errNoGroup
	}
	for _, s := range b.streams {
		delete(s.groups, group)
	}
	b.notifyLocked()
	return nil
}
