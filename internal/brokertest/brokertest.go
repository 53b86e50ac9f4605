// Package brokertest is what Busline's tests share to reach the real
// brokers: their URLs (overridable by environment), and the rule for a
// broker that is down — skip with a message saying how to start it, or fail
// when BUSLINE_REQUIRE_BROKERS=1 (as .ci/run sets). Only tests import it.
package brokertest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/busline/busline/transports"
)

// Required reports whether a missing broker fails tests instead of skipping them.
func Required() bool { return os.Getenv("BUSLINE_REQUIRE_BROKERS") == "1" }

// Unavailable skips t with msg, or fails it when BUSLINE_REQUIRE_BROKERS=1.
func Unavailable(t testing.TB, msg string) {
	t.Helper()
	if Required() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Reachable calls Unavailable unless addr accepts a TCP connection; how
// says how to start what should listen there.
func Reachable(t testing.TB, addr, how string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		_ = c.Close()
		return
	}
	Unavailable(t, fmt.Sprintf("%s unreachable (%v); start it with: %s", addr, err, how))
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// RedisAddr is BUSLINE_TEST_REDIS (host:port) or the local Redis.
func RedisAddr() string { return env("BUSLINE_TEST_REDIS", "127.0.0.1:6379") }

// RedisURL is BUSLINE_REDIS_URL or database 0 of RedisAddr.
func RedisURL() string { return env("BUSLINE_REDIS_URL", "redis://"+RedisAddr()+"/0") }

// AMQPURL is BUSLINE_AMQP_URL or the local RabbitMQ.
func AMQPURL() string { return env("BUSLINE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/") }

// NATSURL is BUSLINE_NATS_URL or the local NATS server (JetStream enabled).
func NATSURL() string { return env("BUSLINE_NATS_URL", "nats://127.0.0.1:4222") }

// NATS calls Unavailable unless the NATS server of NATSURL accepts a TCP
// connection.
func NATS(t testing.TB) {
	t.Helper()
	u, err := url.Parse(NATSURL())
	if err != nil {
		t.Fatalf("BUSLINE_NATS_URL: %v", err)
	}
	host := u.Host
	if u.Port() == "" {
		host += ":4222"
	}
	Reachable(t, host, "`nats-server -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server` (Debian package nats-server) or set BUSLINE_NATS_URL")
}

// PostgresURL is BUSLINE_POSTGRES_URL or the local database "test".
func PostgresURL() string {
	return env("BUSLINE_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
}

// Redact hides a URL's secrets for messages (transports.RedactURL).
func Redact(raw string) string { return transports.RedactURL(raw) }

// Postgres returns a pool on the test database, closed when t ends, or
// calls Unavailable.
func Postgres(t testing.TB) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := pgxpool.New(ctx, PostgresURL())
	if err == nil {
		err = p.Ping(ctx)
	}
	if err != nil {
		if p != nil {
			p.Close()
		}
		Unavailable(t, fmt.Sprintf("PostgreSQL unreachable at %s (%v); start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` (database `test`, trust auth for postgres) or set BUSLINE_POSTGRES_URL", Redact(PostgresURL()), err))
	}
	t.Cleanup(p.Close)
	return p
}
