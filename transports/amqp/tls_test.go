package amqp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/busline/busline/bus"
)

// TestTLS runs a bus over amqps:// through a TLS-terminating proxy in
// front of the test broker, with a CA made for the test and given in the
// cacertfile option; a URL without the CA is refused.
func TestTLS(t *testing.T) {
	requireBroker(t)
	caPEM, cert := testCertificates(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t)
	p.stop()
	p.SetTLS(&tls.Config{Certificates: []tls.Certificate{cert}})
	p.start(t)

	u, _ := url.Parse(brokerURL())
	u.Scheme, u.Host = "amqps", p.addr
	raw := testURL(t, u.String(), "cacertfile="+url.QueryEscape(caFile)+"&server_name_indication=localhost")
	b := newTestBus(t, raw, "svc", "p1")
	got := make(chan string, 1)
	_ = bus.Listen(b, itemEvent, "secure", func(ctx context.Context, d bus.Delivery[item]) error {
		got <- d.ID
		return nil
	})
	startBus(t, b)
	id := fireItem(t, b, 1)
	select {
	case g := <-got:
		if g != id {
			t.Errorf("got %s, want %s", g, id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("event over amqps:// not delivered")
	}

	// Without the CA the server certificate is not trusted.
	_, err := bus.New(bus.Config{Service: "svc", Transport: u.String()})
	if err == nil {
		t.Fatal("amqps:// with an untrusted certificate connected")
	}
}

// testCertificates makes a CA and a certificate for localhost signed by it.
func testCertificates(t *testing.T) (caPEM []byte, serverCert tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "busline test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	serverCert, err = tls.X509KeyPair(
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), serverCert
}
