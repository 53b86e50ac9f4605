package nats

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/busline/busline/internal/brokertest"
	"github.com/busline/busline/transports/transporttest"
)

// servers are the private nats-servers of reconnect tests, by host:port.
var servers sync.Map

// TestConformance runs the transport conformance suite against the NATS
// server of the tests, each test under a prefix of its own. The reconnect
// test runs against a nats-server it starts on a port of its own (file
// store in a temp dir), killed and started again.
func TestConformance(t *testing.T) {
	needNATS(t)
	transporttest.Run(t, transporttest.Harness{
		Name: "nats",
		URL: func(t testing.TB) string {
			if strings.HasSuffix(t.Name(), "/Reconnect") {
				srv := brokertest.StartNATSServer(t)
				servers.Store(srv.Addr(), srv)
				t.Cleanup(func() { servers.Delete(srv.Addr()) })
				return testURL(t, srv.URL(), "")
			}
			return testURL(t, "", "")
		},
		// JetStream's unacknowledged messages belong to the group's
		// consumer, not to a process: one that stops gracefully returns
		// what it held at once, to any process of the group; one killed
		// and restarted under its name gets back what it had recorded as
		// held, but a message in flight at the kill waits for AckWait.
		OwnPendingFirst: false,
		Replay:          true,
		Retention:       true,
		InjectPoison:    injectPoison,
		RestartBroker: func(t testing.TB, raw string) {
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			v, ok := servers.Load(u.Host)
			if !ok {
				t.Fatalf("no private nats-server at %s", u.Host)
			}
			srv := v.(*brokertest.NATSServer)
			srv.Stop(syscall.SIGKILL)
			if err := srv.Start(); err != nil {
				t.Fatal(err)
			}
		},
	})
}

// injectPoison publishes a message that is no Busline event (no event ID
// header) on the subject of topic.
func injectPoison(t testing.TB, raw, topic string) {
	t.Helper()
	cfg, err := parseURLString(raw)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := natsgo.Connect(strings.Join(cfg.servers, ","), cfg.conn...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(ctx, &natsgo.Msg{Subject: cfg.opts.Subject(topic), Data: []byte("\x00not an event"), Header: natsgo.Header{"odd": {"1", "2"}}}); err != nil {
		t.Fatal(err)
	}
}

// TestDriverConformance runs the driver tier of the suite: every driver
// call without the engine, and the capability interfaces.
func TestDriverConformance(t *testing.T) {
	needNATS(t)
	transporttest.RunDriver(t, transporttest.Harness{
		Name:      "nats",
		URL:       func(t testing.TB) string { return testURL(t, "", "") },
		Replay:    true,
		Retention: true,
	})
}

// TestScheduleConformance runs the scheduling section: delays, due
// times in the past, the 30-day cap, cancel and counts per event.
func TestScheduleConformance(t *testing.T) {
	needNATS(t)
	transporttest.RunSchedule(t, transporttest.Harness{
		Name: "nats",
		URL:  func(t testing.TB) string { return testURL(t, "", "") },
	}, transporttest.ScheduleCaps{Cancel: true, Counts: true})
}
