package amqp

import (
	"context"
	"net/url"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/busline/busline/transports/transporttest"
)

// harness runs the conformance suite through a TCP proxy per test, so that
// RestartBroker can drop every connection and refuse new ones for a while,
// as a broker restart does, without touching the shared RabbitMQ.
func harness(name, extra string) transporttest.Harness {
	return transporttest.Harness{
		Name: name,
		URL: func(t testing.TB) string {
			requireBroker(t)
			return testURL(t, startProxy(t).url(t), extra)
		},
		// RabbitMQ returns a dead consumer's deliveries to the queue at
		// once, to every member of the group: there is no "own" pending.
		OwnPendingFirst: false,
		// A queue holds only what was published after it was bound.
		Replay: false,
		// maxlen=N caps group queues with x-max-length (drop-head).
		Retention:     true,
		InjectPoison:  injectPoison,
		RestartBroker: restartBroker,
	}
}

func TestConformance(t *testing.T) {
	transporttest.Run(t, harness("amqp", ""))
}

// TestDriverConformance runs the driver tier of the suite.
func TestDriverConformance(t *testing.T) {
	transporttest.RunDriver(t, harness("amqp", ""))
}

func TestConformanceQuorum(t *testing.T) {
	if testing.Short() {
		t.Skip("quorum queues: run without -short")
	}
	transporttest.Run(t, harness("amqp-quorum", "queue_type=quorum"))
}

// injectPoison publishes a message that is no Busline event (no event ID
// header, no message-id) to the exchange of rawURL with routing key topic.
func injectPoison(t testing.TB, rawURL, topic string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	dial, o, err := ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := amqp091.Dial(dial)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, o.Exchange, topic, false, false,
		amqp091.Publishing{Body: []byte("\x00not an event"), Headers: amqp091.Table{"odd": int32(7)}})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := dc.WaitContext(ctx); !ok || err != nil {
		t.Fatalf("poison not confirmed: %v", err)
	}
}

// restartBroker stops the proxy behind rawURL (every connection dropped,
// new ones refused) and starts it again.
func restartBroker(t testing.TB, rawURL string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := proxies.Load(u.Host)
	if !ok {
		t.Fatalf("no proxy at %s", u.Host)
	}
	p.(*proxy).stop()
	time.Sleep(200 * time.Millisecond) // an outage, not a blip: let clients notice it
	p.(*proxy).start(t)
}

// TestScheduleConformance: RabbitMQ cannot remove a message from a queue
// (no cancel) nor count the delay queues per event.
func TestScheduleConformance(t *testing.T) {
	transporttest.RunSchedule(t, harness("amqp", ""), transporttest.ScheduleCaps{Cancel: false, Counts: false})
}

func TestScheduleConformanceQuorum(t *testing.T) {
	if testing.Short() {
		t.Skip("quorum queues: run without -short")
	}
	transporttest.RunSchedule(t, harness("amqp-quorum", "queue_type=quorum"), transporttest.ScheduleCaps{Cancel: false, Counts: false})
}
