package amqp

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/busline/busline/transports"
)

// Queue types accepted by the queue_type option.
const (
	QueueClassic = "classic"
	QueueQuorum  = "quorum"
)

// DefaultRetryLadder is the default set of delay-queue TTLs (option
// retry_delays). A redelivery waits for the smallest step that is at least
// the delay the bus asked for (the largest step when none is).
var DefaultRetryLadder = []time.Duration{
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour,
}

// Options are the transport settings read from the URL query. The zero value
// of each field means its default.
type Options struct {
	// Exchange is the durable topic exchange events are published to.
	// Query exchange; default "busline".
	Exchange string
	// QueuePrefix is prepended to every queue name (group, delay and
	// dead-letter queues). Query queue_prefix; default "".
	QueuePrefix string
	// QueueType is "classic" or "quorum". Query queue_type; default classic.
	QueueType string
	// QueueVersion is the storage version of classic queues
	// (x-queue-version, RabbitMQ 3.10+): 2, the newer index, spends about
	// 10% less broker CPU per persistent message than 1; -1 leaves it to the
	// broker's default or policy (query value "broker"). Query
	// queue_version; default 2. Not used for quorum queues.
	QueueVersion int
	// Prefetch is the broker prefetch (QoS) of each listener. It is never
	// less than the listener's Concurrency; a larger value keeps deliveries
	// waiting in the client. Query prefetch; default 0 (= Concurrency).
	Prefetch int
	// ChannelPoolSize is the number of publisher-confirm channels shared by
	// every publish of the transport. Query channel_pool_size; default 4.
	ChannelPoolSize int
	// RetryLadder is the set of delay-queue TTLs, ascending. Query
	// retry_delays (comma-separated Go durations); default DefaultRetryLadder.
	RetryLadder []time.Duration
	// MaxLen, when positive, caps each group queue at MaxLen messages
	// (x-max-length, oldest dropped first). Query maxlen; default 0 (no cap).
	MaxLen int
	// ConfirmTimeout bounds how long a publish waits, to be sent and then
	// for its publisher confirm, when the message's context has no
	// deadline: the publish then fails with an error wrapping
	// context.DeadlineExceeded (and ErrNotConfirmed when it may have been
	// sent). Query confirm_timeout; default 30s.
	ConfirmTimeout time.Duration
	// ReconnectMax is the longest wait between two reconnection attempts
	// (the backoff starts at 100ms and doubles). Query reconnect_max; default 10s.
	ReconnectMax time.Duration
}

// amqpQueryParams are the RabbitMQ URI query parameters that amqp091 reads
// itself (https://www.rabbitmq.com/docs/uri-query-parameters); they are
// passed through to the dialer.
var amqpQueryParams = []string{
	"heartbeat", "connection_timeout", "channel_max", "auth_mechanism",
	"cacertfile", "certfile", "keyfile", "server_name_indication",
}

func (o Options) withDefaults() Options {
	if o.Exchange == "" {
		o.Exchange = "busline"
	}
	if o.QueueType == "" {
		o.QueueType = QueueClassic
	}
	if o.QueueVersion == 0 {
		o.QueueVersion = 2
	}
	if o.ChannelPoolSize <= 0 {
		o.ChannelPoolSize = 4
	}
	if len(o.RetryLadder) == 0 {
		o.RetryLadder = slices.Clone(DefaultRetryLadder)
	}
	if o.ConfirmTimeout <= 0 {
		o.ConfirmTimeout = 30 * time.Second
	}
	if o.ReconnectMax <= 0 {
		o.ReconnectMax = 10 * time.Second
	}
	return o
}

// ParseURL splits a transport URL into the options Busline reads and the
// URL handed to the AMQP client (scheme, credentials, host, vhost and the
// RabbitMQ URI parameters). An unknown query parameter is an error wrapping
// transports.ErrInvalidURL, so that a typo does not pass silently.
func ParseURL(u *url.URL) (dialURL string, o Options, err error) {
	if u.Scheme != "amqp" && u.Scheme != "amqps" {
		return "", o, fmt.Errorf("%w: scheme %q is not amqp or amqps", transports.ErrInvalidURL, u.Scheme)
	}
	q := u.Query()
	pass := url.Values{}
	for key, vals := range q {
		if len(vals) == 0 {
			continue
		}
		v := vals[len(vals)-1]
		bad := func(why string) error {
			return fmt.Errorf("%w: option %s=%q: %s", transports.ErrInvalidURL, key, v, why)
		}
		switch key {
		case "exchange":
			if v == "" {
				return "", o, bad("the exchange name must not be empty")
			}
			o.Exchange = v
		case "queue_prefix":
			o.QueuePrefix = v
		case "queue_type":
			if v != QueueClassic && v != QueueQuorum {
				return "", o, bad("want classic or quorum")
			}
			o.QueueType = v
		case "queue_version":
			switch v {
			case "1", "2":
				o.QueueVersion, _ = strconv.Atoi(v)
			case "broker":
				o.QueueVersion = -1
			default:
				return "", o, bad("want 1, 2, or broker")
			}
		case "prefetch":
			if o.Prefetch, err = nonNegative(v); err != nil {
				return "", o, bad(err.Error())
			}
		case "channel_pool_size":
			if o.ChannelPoolSize, err = nonNegative(v); err != nil {
				return "", o, bad(err.Error())
			}
		case "maxlen":
			if o.MaxLen, err = nonNegative(v); err != nil {
				return "", o, bad(err.Error())
			}
		case "retry_delays":
			if o.RetryLadder, err = parseLadder(v); err != nil {
				return "", o, bad(err.Error())
			}
		case "confirm_timeout":
			if o.ConfirmTimeout, err = positiveDuration(v); err != nil {
				return "", o, bad(err.Error())
			}
		case "reconnect_max":
			if o.ReconnectMax, err = positiveDuration(v); err != nil {
				return "", o, bad(err.Error())
			}
		default:
			if !slices.Contains(amqpQueryParams, key) {
				return "", o, fmt.Errorf("%w: unknown option %q (see docs/transports/amqp.md)", transports.ErrInvalidURL, key)
			}
			pass[key] = vals
		}
	}
	d := *u
	d.RawQuery = pass.Encode()
	d.Fragment = ""
	o = o.withDefaults()
	if err := checkNames(o); err != nil {
		return "", o, fmt.Errorf("%w: %w (shorten exchange or queue_prefix)", transports.ErrInvalidURL, err)
	}
	return d.String(), o, nil
}

func nonNegative(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("want a non-negative integer")
	}
	return n, nil
}

func positiveDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("want a positive duration such as 500ms or 10s")
	}
	return d, nil
}

func parseLadder(v string) ([]time.Duration, error) {
	var out []time.Duration
	for _, part := range strings.Split(v, ",") {
		d, err := positiveDuration(strings.TrimSpace(part))
		if err != nil {
			return nil, err
		}
		if d%time.Millisecond != 0 {
			return nil, fmt.Errorf("delays are whole milliseconds (message TTLs are)")
		}
		out = append(out, d)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
