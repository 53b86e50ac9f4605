package nats

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/busline/busline/transports"
)

func TestParseURLDefaults(t *testing.T) {
	c, err := parseURLString("nats://127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	o := c.opts
	if o.Prefix != "busline" || o.MaxLen != 100_000 || o.DeadMaxLen != 0 || o.Storage != jetstream.FileStorage ||
		o.Replicas != 1 || o.DedupWindow != 2*time.Minute || o.MaxAckPending != 20_000 || o.Timeout != 10*time.Second || o.MaxAckWait != 15*time.Second {
		t.Fatalf("defaults = %+v", o)
	}
	if len(c.servers) != 1 || c.servers[0] != "nats://127.0.0.1:4222" || len(c.conn) != 0 {
		t.Fatalf("servers %v, %d connection options", c.servers, len(c.conn))
	}
}

func TestParseURLOptions(t *testing.T) {
	c, err := parseURLString("nats://u:secret@a:4222,b:4333?prefix=app&maxlen=10&maxlen.a.b=0&dead_maxlen=7&storage=memory" +
		"&replicas=3&dedup_window=1m&max_ack_pending=-1&timeout=3s&ack_wait_max=1m&name=web")
	if err != nil {
		t.Fatal(err)
	}
	o := c.opts
	if o.Prefix != "app" || o.MaxLen != 10 || o.maxLen("a.b") != 0 || o.maxLen("c.d") != 10 || o.DeadMaxLen != 7 ||
		o.Storage != jetstream.MemoryStorage || o.Replicas != 3 || o.DedupWindow != time.Minute || o.MaxAckPending != -1 ||
		o.Timeout != 3*time.Second || o.MaxAckWait != time.Minute {
		t.Fatalf("options = %+v", o)
	}
	if strings.Join(c.servers, " ") != "nats://a:4222 nats://b:4333" || len(c.conn) != 2 {
		t.Fatalf("servers %v, %d connection options (want user info and name)", c.servers, len(c.conn))
	}
	if o.StreamName("competitor_prices.changed") != "app_competitor_prices-changed" || o.Subject("a.b") != "app.a.b" ||
		ConsumerName("svc.x-listener") != "svc~x-listener" || o.DeadSubject("g") != "app._dead.g" || o.DeadSubject("a..b.") != "app._dead.a~~b~" {
		t.Fatal("names")
	}
	if e, ok := o.eventOfStream("app_competitor_prices-changed"); !ok || e != "competitor_prices.changed" {
		t.Fatalf("eventOfStream = %q %v", e, ok)
	}
	if _, ok := o.eventOfStream("app_dead"); ok {
		t.Fatal("the dead-letter stream read as an event stream")
	}
}

func TestParseURLTLS(t *testing.T) {
	for _, raw := range []string{"tls://h:4222", "nats://h:4222?tls=true", "nats://h?tls_insecure=true"} {
		c, err := parseURLString(raw)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if !strings.HasPrefix(c.servers[0], "tls://") && !strings.Contains(raw, "tls_insecure") {
			t.Errorf("%s: servers %v, want tls://", raw, c.servers)
		}
		if len(c.conn) != 1 {
			t.Errorf("%s: %d connection options, want the TLS config", raw, len(c.conn))
		}
	}
}

func TestParseURLErrors(t *testing.T) {
	for _, raw := range []string{
		"nats://h?maxlen=x", "nats://h?maxlen=-1", "nats://h?storage=disk", "nats://h?unknown=1",
		"nats://h?prefix=a.b", "nats://h?dedup_window=0s", "nats://h?tls_cert=/x", "nats://h?tls_ca=/does/not/exist",
		"nats://h?replicas=0", "nats://tok@h?nkey=/does/not/exist", "nats://h?creds=/does/not/exist.creds",
		"nats://h?maxlen.Bad-Event=5",
	} {
		_, err := parseURLString(raw)
		if !errors.Is(err, transports.ErrInvalidURL) {
			t.Errorf("%s: error %v, want ErrInvalidURL", raw, err)
		}
	}
}

// Credentials never show in errors: a token in the user info, a password.
func TestOpenErrorRedactsCredentials(t *testing.T) {
	for _, raw := range []string{"nats://sekrit-token@127.0.0.1:1", "nats://user:sekrit@127.0.0.1:1?maxlen=x"} {
		_, err := transports.Open(t.Context(), raw, transports.OpenOptions{})
		if err == nil {
			t.Fatalf("%s: no error", raw)
		}
		if strings.Contains(err.Error(), "sekrit") {
			t.Errorf("error shows the secret: %v", err)
		}
	}
}
