package nats

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/internal/brokertest"
	"github.com/busline/busline/transports"
)

// TestTLS publishes and receives over tls:// against a nats-server of the
// test's own that requires TLS, with the test's CA in tls_ca; without it
// the connection fails (the certificate is not trusted).
func TestTLS(t *testing.T) {
	cert, key := brokertest.SelfSigned(t, t.TempDir())
	srv := brokertest.StartNATSServer(t, "--tls", "--tlscert", cert, "--tlskey", key)
	base := "tls://" + srv.Addr()
	if _, err := transports.Open(context.Background(), base+"?prefix=x", transports.OpenOptions{}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate: error %v", err)
	}
	for _, raw := range []string{base + "?tls_ca=" + cert, "nats://" + srv.Addr() + "?tls=true&tls_ca=" + cert} {
		tr := openTransport(t, testURL(t, raw, ""))
		s := openSub(t, tr, "svc-work", time.Minute)
		msg := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
		if err := tr.Publish(testEvent, msg); err != nil {
			t.Fatal(err)
		}
		if got := receive(t, s, 1, 5*time.Second)[0]; got.Message.UUID != msg.UUID {
			t.Fatalf("%s: got %s", raw, got.Message.UUID)
		}
	}
}
