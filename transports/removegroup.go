package transports

import (
	"context"
	"errors"
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
