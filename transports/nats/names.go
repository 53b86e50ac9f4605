package nats

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/busline/busline/transports"
)

// Names of what the transport creates on the server, all under
// Options.Prefix. Event names are lower snake case with dots; stream and
// consumer names may not hold dots, so a dot becomes '-' in a stream name
// and '~' in a consumer name (neither can occur in an event or group
// name, so the mapping is one to one).

var (
	eventRE = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$`)
	groupRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
)

// checkEvent reports an event name JetStream cannot carry as a subject.
func checkEvent(event string) error {
	if !eventRE.MatchString(event) {
		return fmt.Errorf("%w: nats: event name %q (want api.event in lower snake case)", transports.ErrInvalidConfig, event)
	}
	return nil
}

// checkGroup reports a consumer group name JetStream cannot carry.
func checkGroup(group string) error {
	if !groupRE.MatchString(group) {
		return fmt.Errorf("%w: nats: consumer group %q", transports.ErrInvalidConfig, group)
	}
	return nil
}

// checkDeadGroup reports a group name no consumer group can have, for the
// dead-letter commands, which take names from users: its dead letters
// cannot exist, and a wildcard ('*', '>') in it would otherwise make the
// subject of every group's dead letters.
func checkDeadGroup(group string) error {
	if checkGroup(group) != nil {
		return fmt.Errorf("%w: nats: no consumer group can be named %q", transports.ErrNotFound, group)
	}
	return nil
}

// StreamName returns the stream of event: "{prefix}_{event}" with the dots
// of event as '-' ("busline_competitor_prices-changed").
func (o Options) StreamName(event string) string {
	return o.Prefix + "_" + strings.ReplaceAll(event, ".", "-")
}

// eventOfStream is the inverse of StreamName; ok is false for a stream
// that is not an event stream under the prefix.
func (o Options) eventOfStream(stream string) (string, bool) {
	rest, ok := strings.CutPrefix(stream, o.Prefix+"_")
	if !ok || !strings.Contains(rest, "-") {
		return "", false
	}
	event := strings.ReplaceAll(rest, "-", ".")
	return event, eventRE.MatchString(event)
}

// Subject returns the subject events of event are published on:
// "{prefix}.{event}".
func (o Options) Subject(event string) string { return o.Prefix + "." + event }

// ConsumerName returns the durable consumer of group: the group name with
// its dots as '~'.
func ConsumerName(group string) string { return strings.ReplaceAll(group, ".", "~") }

// groupOfConsumer is the inverse of ConsumerName.
func groupOfConsumer(name string) string { return strings.ReplaceAll(name, "~", ".") }

// DeadStream returns the stream that keeps every group's dead letters:
// "{prefix}_dead".
func (o Options) DeadStream() string { return o.Prefix + "_dead" }

// DeadSubject returns the subject of group's dead letters in DeadStream:
// "{prefix}._dead.{group}" with the dots of the group name as '~' (one
// subject token whatever the group; no event name starts with '_', so it
// never overlaps an event subject).
func (o Options) DeadSubject(group string) string { return o.Prefix + "._dead." + ConsumerName(group) }

// RecordBucket returns the key-value bucket of records: "{prefix}_records".
func (o Options) RecordBucket() string { return o.Prefix + "_records" }
