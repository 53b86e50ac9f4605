package transports

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// MaxScheduleAhead is the furthest ahead an event can be scheduled: 30 days.
const MaxScheduleAhead = 30 * 24 * time.Hour

var (
	// ErrScheduleTooFar is returned for a due time more than
	// MaxScheduleAhead from now.
	ErrScheduleTooFar = errors.New("transports: scheduled too far ahead (at most 30 days)")
	// ErrNotScheduled is returned by CancelScheduled for an event ID that
	// is not waiting for its due time: never scheduled, already moved to
	// its stream (delivered or about to be), or already cancelled.
	ErrNotScheduled = errors.New("transports: event is not scheduled")
)

// Scheduler is the capability of holding events until a due time. A
// scheduled event waits on the broker, outside every stream, and is
// appended to the stream of its topic — exactly as a Publish at that
// moment — once the due time has passed: every consumer group that exists
// then gets it, including groups created after it was scheduled, and none
// gets it earlier.
//
// A driver implements it with a durable due-ordered set and a mover that
// appends what is due to the topic's stream: memory, a heap moved by a
// timer; Redis, sorted sets moved by a Lua script under a short lease;
// RabbitMQ, TTL delay queues read back by a mover consumer; NATS
// JetStream, a stream with a subject per event ID, moved and cancelled by
// publishes conditional on the subject's last sequence, under a short
// lease.
type Scheduler interface {
	// Schedule stores msg for delivery on topic at due and returns once the
	// broker holds it durably. A due time not after now is published at
	// once. Scheduling a message whose UUID is already scheduled replaces
	// the earlier one. A due time further than MaxScheduleAhead returns an
	// error wrapping ErrScheduleTooFar.
	Schedule(ctx context.Context, topic string, due time.Time, msg *message.Message) error
	// CancelScheduled removes the scheduled event with the given ID so
	// that it is never delivered. It returns an error wrapping
	// ErrNotScheduled when the event is not waiting (see ErrNotScheduled),
	// and one wrapping ErrUnsupported where the broker cannot remove a
	// scheduled event.
	CancelScheduled(ctx context.Context, id string) error
	// Scheduled reports, per event name, how many events wait and the
	// earliest due time, sorted by event name. A broker that cannot count
	// per event returns an error wrapping ErrUnsupported.
	Scheduled(ctx context.Context) ([]ScheduledInfo, error)
}

// ScheduledInfo is what waits for one event name.
type ScheduledInfo struct {
	// Event is the event name.
	Event string `json:"event"`
	// Count is the number of scheduled events not yet due or not yet moved.
	Count int64 `json:"count"`
	// NextDue is the earliest due time among them.
	NextDue time.Time `json:"next_due"`
}

// ScheduledTally adds scheduled events up per event name, for
// Scheduler.Scheduled. The zero value is not usable: make one with
// make(ScheduledTally).
type ScheduledTally map[string]*ScheduledInfo

// Add counts one event of event due at due.
func (t ScheduledTally) Add(event string, due time.Time) {
	si := t[event]
	if si == nil {
		si = &ScheduledInfo{Event: event, NextDue: due}
		t[event] = si
	}
	si.Count++
	if due.Before(si.NextDue) {
		si.NextDue = due
	}
}

// List returns the tally sorted by event name, never nil.
func (t ScheduledTally) List() []ScheduledInfo {
	out := make([]ScheduledInfo, 0, len(t))
	for _, si := range t {
		out = append(out, *si)
	}
	slices.SortFunc(out, func(a, b ScheduledInfo) int { return strings.Compare(a.Event, b.Event) })
	return out
}

// CheckDue returns an error wrapping ErrScheduleTooFar when due is more
// than MaxScheduleAhead after now. Every Scheduler calls it, so that the
// limit is the same on every transport.
func CheckDue(now, due time.Time) error {
	if ahead := due.Sub(now); ahead > MaxScheduleAhead {
		return fmt.Errorf("%w: due %s is %s ahead", ErrScheduleTooFar, due.UTC().Format(time.RFC3339), ahead.Round(time.Second))
	}
	return nil
}

// DueNow is the first step of every Schedule: an error wrapping
// ErrScheduleTooFar when due is too far ahead (CheckDue), and true when
// due is not after now, so that the driver publishes at once.
func DueNow(now, due time.Time) (bool, error) {
	if err := CheckDue(now, due); err != nil {
		return false, err
	}
	return !due.After(now), nil
}

// DueMillis is due in Unix milliseconds rounded up, for brokers that keep
// due times in milliseconds: a time compared with it is never early.
func DueMillis(due time.Time) int64 {
	ms := due.UnixMilli()
	if time.UnixMilli(ms).Before(due) {
		ms++
	}
	return ms
}
