package bus

import (
	"fmt"
	"strings"

	"github.com/busline/busline/transports"
)

// Name limits, the same on every transport, so that a name valid on one
// transport is valid on all. They keep every broker name Busline derives
// from them — the AMQP queues "{group}", "{group}.dead" and
// "{group}.retry.{step}" with a queue prefix, AMQP connection names, Redis
// keys — within the brokers' limits (AMQP: 255 bytes).
const (
	// MaxServiceLen is the longest service name, in bytes.
	MaxServiceLen = 100
	// MaxListenerLen is the longest listener name, in bytes.
	MaxListenerLen = 100
	// MaxProcessLen is the longest process name (placeholders expanded), in bytes.
	MaxProcessLen = 100
)

// GroupName returns the consumer group of a listener: "{service}-{listener}".
// Two pairs can spell the same group ("billing-eu" + "invoice" and
// "billing" + "eu-invoice"); where the transport keeps records, Start
// refuses the second pair with ErrGroupConflict.
func GroupName(service, listener string) string { return service + "-" + listener }

// ValidateName checks a service, listener or process name (kind says
// which) with the one rule every transport shares: 1 to 100 bytes of
// letters, digits, '.', '_' and '-', starting with a letter or digit, and
// none of the parts transports use for their own queues: a listener may
// not end in ".dead", and no name may contain ".retry." or ".records.".
// Errors wrap ErrInvalidConfig (service, process) or ErrInvalidListener.
func ValidateName(kind, name string) error {
	sentinel, limit := ErrInvalidConfig, MaxServiceLen
	switch kind {
	case "listener":
		sentinel, limit = ErrInvalidListener, MaxListenerLen
	case "process":
		limit = MaxProcessLen
	}
	switch {
	case name == "":
		return fmt.Errorf("%w: the %s name is empty", sentinel, kind)
	case len(name) > limit:
		return fmt.Errorf("%w: the %s name %.40q... is %d bytes long; at most %d are allowed on every transport", sentinel, kind, name, len(name), limit)
	case !transports.NameChars(name):
		return fmt.Errorf("%w: %s name %q may hold only letters, digits, '.', '_' and '-', and starts with a letter or digit", sentinel, kind, name)
	}
	// Parts of the names transports give their own queues and keys: a
	// group spelled with them would read another group's dead letters or
	// delay queues (AMQP "{group}.dead", "{group}.retry.{step}",
	// "{exchange}.records.{kind}").
	if s := transports.ReservedInfix(name); s != "" {
		return fmt.Errorf("%w: %s name %q contains %q, which transports use for their own queues (AMQP \"{group}%s...\"); rename it", sentinel, kind, name, s, s)
	}
	if s := transports.ReservedSuffix(name); s != "" && kind == "listener" {
		return fmt.Errorf("%w: listener name %q ends in %q: the group %q would be the dead-letter queue of the listener %q (AMQP \"{group}%s\"); rename it", sentinel, name, s, "{service}-"+name, strings.TrimSuffix(name, s), s)
	}
	return nil
}
