package transports

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrGroupInUse is returned by RemoveGroup for a group that a process
// still reads: stop (or rename back) the listener first.
var ErrGroupInUse = errors.New("transports: the consumer group is in use")

// RemoveGroupOptions says what RemoveGroup removes besides the group.
type RemoveGroupOptions struct {
	// DeadLetters removes the group's dead letters too; by default they
	// are kept, to be read, replayed elsewhere or purged later.
	DeadLetters bool
	// Force removes a group that looks in use (a consumer read it
	// recently, or a consumer is attached): its readers lose their place.
	Force bool
}

// GroupRemover is the capability of retiring a consumer group whose
// listener was renamed or removed: without it, the broker keeps every
// event fired since for the group (a RabbitMQ queue grows without bound,
// a stream group's lag grows for good).
type GroupRemover interface {
	// RemoveGroup deletes group from the broker: its place on the stream
	// of every event it reads, with the events it holds (Redis consumer
	// groups, NATS consumers, the RabbitMQ queue and its retry queues),
	// and its owner record, so the name can be used again. It returns an
	// error wrapping ErrNotFound when the broker knows no such group, and
	// one wrapping ErrGroupInUse when a process still reads it (unless
	// opts.Force).
	RemoveGroup(ctx context.Context, group string, opts RemoveGroupOptions) error
}

// GroupIdleFor is how long a group's consumers must all have been idle
// for RemoveGroup to take the group as unused, on brokers that report a
// consumer's idle time (Redis).
const GroupIdleFor = time.Minute

// CheckGroupName returns an error wrapping ErrNotFound for a name no
// consumer group can have: one a service and listener cannot spell, or
// one holding the parts transports give their own queues and keys
// (".dead" at the end, ".retry.", ".records."), which would name another
// group's dead letters or delay queues, or the records. A tool that
// deletes by group name checks it first.
func CheckGroupName(group string) error {
	ok := len(group) <= 201 && NameChars(group) && strings.Contains(group, "-") &&
		ReservedSuffix(group) == "" && ReservedInfix(group) == ""
	if !ok {
		return fmt.Errorf("%w: no consumer group can be named %.60q (groups are \"{service}-{listener}\")", ErrNotFound, group)
	}
	return nil
}

// GroupGone is RemoveGroup's error for a group the broker keeps nothing
// of to remove: an error wrapping ErrNotFound, which says so when its dead
// letters are left (RemoveGroupOptions.DeadLetters removes them).
func GroupGone(driver, group string, deadLetters bool) error {
	if deadLetters {
		return fmt.Errorf("%w: %s: no consumer group %q; only its dead letters are left (remove them too to forget it)", ErrNotFound, driver, group)
	}
	return fmt.Errorf("%w: %s: no consumer group %q", ErrNotFound, driver, group)
}

// GroupNotReading is ReplayDeadLetter's error for a dead letter whose
// group no longer reads its event (removed, or never made on this
// broker): the event would reach nobody, so the dead letter is kept. It
// wraps ErrNotFound.
func GroupNotReading(driver, group, event string) error {
	return fmt.Errorf("%w: %s: consumer group %q no longer reads %s (removed?): the dead letter is kept; purge it, or fire the event again", ErrNotFound, driver, group, event)
}
