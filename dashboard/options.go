package dashboard

import (
	"log/slog"
	"time"

	"github.com/busline/busline/transports"
)

// Default values of Options.
const (
	DefaultRefresh    = 2 * time.Second
	DefaultStaleAfter = 5 * time.Minute
	DefaultDeadLimit  = 200
)

// Options configure Handler. Transport, or the capability fields, say what
// the dashboard reads; everything else has a default.
type Options struct {
	// Transport supplies the capabilities the transport has (Inspector,
	// DeadLetterStore, Tailer). The fields below override it one by one.
	Transport transports.Transport
	// Inspector reports streams, groups and consumers. Without one the page
	// says that the transport cannot be inspected.
	Inspector transports.Inspector
	// DeadLetters lists, replays and purges dead letters. Without one the
	// page shows no dead letters.
	DeadLetters transports.DeadLetterStore
	// Tailer follows an event live. Without one the page has no tail.
	Tailer transports.Tailer
	// Scheduler reports the events fired with a delay that wait for their
	// due time. Without one the page shows no scheduled counts.
	Scheduler transports.Scheduler

	// Name is shown in the page header, typically the transport URL. It is
	// shown as given: pass it through the project's redaction first.
	Name string
	// Groups are the consumer groups to inspect on a broker that cannot
	// list its queues (AMQP); empty elsewhere.
	Groups []string

	// Token, when set, is required on every request: "Authorization:
	// Bearer TOKEN", or the session cookie set by the login form.
	Token string
	// ReadOnly refuses replay and purge, and the page hides their buttons.
	ReadOnly bool

	// Refresh is how often the page's figures are refreshed (default 2 s).
	Refresh time.Duration
	// StaleAfter is the idle time after which a consumer is shown as
	// stale (default 5 minutes).
	StaleAfter time.Duration
	// DeadLimit is the number of dead letters listed per group (default 200).
	DeadLimit int
	// Logger receives the errors of actions; default slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Transport != nil {
		if o.Inspector == nil {
			o.Inspector, _ = o.Transport.(transports.Inspector)
		}
		if o.DeadLetters == nil {
			o.DeadLetters, _ = o.Transport.(transports.DeadLetterStore)
		}
		if o.Tailer == nil {
			o.Tailer, _ = o.Transport.(transports.Tailer)
		}
		if o.Scheduler == nil {
			o.Scheduler, _ = o.Transport.(transports.Scheduler)
		}
	}
	if o.Refresh <= 0 {
		o.Refresh = DefaultRefresh
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = DefaultStaleAfter
	}
	if o.DeadLimit <= 0 {
		o.DeadLimit = DefaultDeadLimit
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}
