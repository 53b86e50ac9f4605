package redisstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/internal/brokertest"
	"github.com/busline/busline/transports"
)

// startTLSRedis starts a redis-server with TLS only on a port of its own,
// stopped when the test ends, and returns its port and CA certificate file.
func startTLSRedis(t *testing.T) (port int, caFile string) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not on PATH")
	}
	dir := t.TempDir()
	cert, key := brokertest.SelfSigned(t, dir)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port = l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	cmd := exec.Command("redis-server", "--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", cert, "--tls-auth-clients", "no",
		"--save", "", "--appendonly", "no", "--dir", dir, "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		t.Skipf("redis-server with TLS did not start: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return port, cert
}

// TestTLS runs a publish and a delivery over rediss:// against a
// redis-server with TLS that the test starts on a port of its own.
func TestTLS(t *testing.T) {
	port, _ := startTLSRedis(t)
	var err error
	u := fmt.Sprintf("rediss://127.0.0.1:%d/0?skip_verify=true&prefix=bltest-tls:", port)
	var tr transports.Transport
	eventually(t, 10*time.Second, "the TLS server to accept connections", func() bool {
		tr, err = transports.Open(context.Background(), u, transports.OpenOptions{Service: "tls"})
		return err == nil
	})
	t.Cleanup(func() { _ = tr.Close() })
	rt := tr.(*Transport)
	sub := newSub(t, rt, "g", "c", time.Minute, 1, transports.Since{})
	ch, _ := subscribe(t, sub, "e.x")
	ids := publish(t, rt, "e.x", "over tls")
	m := receive(t, ch, 5*time.Second)
	if m.UUID != ids[0] {
		t.Fatalf("got %s, want %s", m.UUID, ids[0])
	}
	m.Ack()
}

// TestTLSRecipe runs the recipe of docs/transports/redis.md ("TLS with your
// own certificates") as written: a go-redis client with a tls.Config that
// trusts a private CA, a transport on it, a bus from that value.
func TestTLSRecipe(t *testing.T) {
	port, caFile := startTLSRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	// --- the recipe ---
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	client := redis.NewClient(&redis.Options{
		Addr:      fmt.Sprintf("127.0.0.1:%d", port),
		TLSConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
	})
	defer client.Close()
	opts := DefaultOptions()
	opts.Prefix = "bltest-tlsrecipe:"
	var tr *Transport
	eventually(t, 10*time.Second, "the TLS server to accept connections", func() bool {
		tr, err = New(ctx, client, opts, logger)
		return err == nil
	})
	b, err := bus.NewContext(ctx, bus.Config{Service: "tls", Process: "{hostname}", Logger: logger}, bus.WithTransport(tr))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// --- end of the recipe ---

	ev := bus.NewEvent[string]("tls_recipe", "fired")
	got := make(chan string, 1)
	if err := bus.Listen(b, ev, "l", func(_ context.Context, d bus.Delivery[string]) error {
		got <- d.Payload
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.Fire(ctx, b, ev, "over tls"); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if p != "over tls" {
			t.Fatalf("payload %q", p)
		}
	case <-ctx.Done():
		t.Fatal("not delivered over TLS")
	}
}
