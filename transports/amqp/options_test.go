package amqp

import (
	"errors"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/busline/busline/transports"
)

func parse(t *testing.T, raw string) (string, Options, error) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return ParseURL(u)
}

func TestParseURLDefaults(t *testing.T) {
	dial, o, err := parse(t, "amqp://guest:guest@127.0.0.1:5672/")
	if err != nil {
		t.Fatal(err)
	}
	if dial != "amqp://guest:guest@127.0.0.1:5672/" {
		t.Errorf("dial URL = %q", dial)
	}
	if o.Exchange != "busline" || o.QueueType != QueueClassic || o.ChannelPoolSize != 4 || o.Prefetch != 0 ||
		o.MaxLen != 0 || o.QueuePrefix != "" || o.QueueVersion != 2 || o.ConfirmTimeout != 30*time.Second || o.ReconnectMax != 10*time.Second {
		t.Errorf("defaults = %+v", o)
	}
	if !slices.Equal(o.RetryLadder, DefaultRetryLadder) {
		t.Errorf("ladder = %v", o.RetryLadder)
	}
}

func TestParseURLOptions(t *testing.T) {
	dial, o, err := parse(t, "amqps://u:p@mq.example:5671/prod?exchange=ev&queue_prefix=x.&queue_type=quorum&prefetch=64"+
		"&channel_pool_size=8&maxlen=1000&retry_delays=5s,1s,1s&confirm_timeout=2s&reconnect_max=1m&heartbeat=5&cacertfile=/ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	want := Options{Exchange: "ev", QueuePrefix: "x.", QueueType: QueueQuorum, Prefetch: 64, ChannelPoolSize: 8, MaxLen: 1000,
		RetryLadder: []time.Duration{time.Second, 5 * time.Second}, ConfirmTimeout: 2 * time.Second, ReconnectMax: time.Minute}
	if o.Exchange != want.Exchange || o.QueuePrefix != want.QueuePrefix || o.QueueType != want.QueueType || o.Prefetch != want.Prefetch ||
		o.ChannelPoolSize != want.ChannelPoolSize || o.MaxLen != want.MaxLen || !slices.Equal(o.RetryLadder, want.RetryLadder) ||
		o.ConfirmTimeout != want.ConfirmTimeout || o.ReconnectMax != want.ReconnectMax {
		t.Errorf("options = %+v, want %+v", o, want)
	}
	if dial != "amqps://u:p@mq.example:5671/prod?cacertfile=%2Fca.pem&heartbeat=5" {
		t.Errorf("dial URL = %q: want the RabbitMQ parameters passed through and Busline's removed", dial)
	}
}

func TestQueueVersionArgs(t *testing.T) {
	for q, want := range map[string]any{"": int64(2), "queue_version=1": int64(1), "queue_version=broker": nil, "queue_type=quorum": nil} {
		_, o, err := parse(t, "amqp://h/?"+q)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := topology{o: o}.baseArgs()["x-queue-version"]
		if (want == nil && ok) || (want != nil && got != want) {
			t.Errorf("%s: x-queue-version = %v (set %v), want %v", q, got, ok, want)
		}
	}
}

func TestParseURLErrors(t *testing.T) {
	for _, raw := range []string{
		"amqp://h/?exchnage=x",
		"amqp://h/?queue_type=stream",
		"amqp://h/?prefetch=-1",
		"amqp://h/?maxlen=many",
		"amqp://h/?retry_delays=1s,soon",
		"amqp://h/?retry_delays=1500us",
		"amqp://h/?confirm_timeout=0s",
		"amqp://h/?exchange=",
		"amqp://h/?queue_version=3",
		"redis://h/",
	} {
		if _, _, err := parse(t, raw); !errors.Is(err, transports.ErrInvalidURL) {
			t.Errorf("ParseURL(%s) = %v, want ErrInvalidURL", raw, err)
		}
	}
}

func TestLadderStep(t *testing.T) {
	tp := topology{o: Options{}.withDefaults()}
	for d, want := range map[time.Duration]time.Duration{
		0: 100 * time.Millisecond, 50 * time.Millisecond: 100 * time.Millisecond, 150 * time.Millisecond: 250 * time.Millisecond,
		time.Second: time.Second, 3 * time.Second: 5 * time.Second, 4 * time.Minute: 5 * time.Minute, 24 * time.Hour: time.Hour,
	} {
		if got := tp.step(d); got != want {
			t.Errorf("step(%s) = %s, want %s", d, got, want)
		}
	}
	for d, want := range map[time.Duration]string{250 * time.Millisecond: "250ms", 5 * time.Second: "5s", 2 * time.Minute: "2m", time.Hour: "1h", 1500 * time.Millisecond: "1500ms"} {
		if got := stepName(d); got != want {
			t.Errorf("stepName(%s) = %s, want %s", d, got, want)
		}
	}
	if q := tp.delayQueue("svc-l", 5*time.Second); q != "svc-l.retry.5s" {
		t.Errorf("delay queue %q", q)
	}
}
