package transporttest

import (
	"testing"
	"time"
)

// Harness tells the suite how to reach one transport and what it can do.
// Flags are honest declarations: a flag that is false makes the suite check
// the weaker behaviour the transport documents instead, never skip silently.
type Harness struct {
	// Name labels the transport in test names.
	Name string

	// URL returns a transport URL for one test, isolated from every other
	// test (its own key prefix, exchange and queue names, or broker name),
	// and registers a t.Cleanup that removes what the test created. Buses
	// opened with the same URL share the broker namespace: they are
	// processes of one deployment. URL may take options in the query, and
	// must accept the query option maxlen=N (see Retention) when
	// Retention is set.
	URL func(t testing.TB) string

	// OwnPendingFirst: a process restarted with the same process name gets
	// its own unacknowledged events at once, before the AckTimeout
	// (Redis Streams, memory). False for brokers that return unacked
	// events to the queue as soon as the consumer's connection closes
	// (RabbitMQ), which the suite then checks instead.
	OwnPendingFirst bool

	// Replay: Since Beginning and SinceTime read retained history.
	// False: the suite checks that asking for it fails with an error
	// matching transports.ErrUnsupported.
	Replay bool

	// Retention: streams are trimmed to the maxlen=N URL option.
	Retention bool

	// InjectPoison writes an entry that the transport cannot decode into a
	// message onto the stream/queue of topic, in the namespace of url.
	// Nil skips the poison-entry check (an undecodable payload, which
	// every transport can carry, is still checked).
	InjectPoison func(t testing.TB, url, topic string)

	// RestartBroker stops the broker behind url and starts it again (item
	// 12 of the semantics in docs/transports.md). It must return once the broker accepts
	// connections again. Nil skips the reconnect check.
	RestartBroker func(t testing.TB, url string)

	// Slow scales the suite's waits for brokers with coarse timers
	// (default 1).
	Slow float64
}

func (h Harness) scale(d time.Duration) time.Duration {
	if h.Slow <= 0 {
		return d
	}
	return time.Duration(float64(d) * h.Slow)
}
