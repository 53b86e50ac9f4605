package pgstore_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgURL is the database the tests use: BUSLINE_POSTGRES_URL or the local default.
func pgURL() string {
	if u := os.Getenv("BUSLINE_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// pool connects to the test database or skips the test (fails it when
// BUSLINE_REQUIRE_BROKERS=1).
func pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := pgxpool.New(ctx, pgURL())
	if err == nil {
		err = p.Ping(ctx)
	}
	if err != nil {
		if p != nil {
			p.Close()
		}
		msg := fmt.Sprintf("PostgreSQL unreachable at %s (%v); start one on 127.0.0.1:5432 with a database `test` (trust auth for postgres) or set BUSLINE_POSTGRES_URL", redact(pgURL()), err)
		if os.Getenv("BUSLINE_REQUIRE_BROKERS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(p.Close)
	return p
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// table returns a table name private to the test and drops it afterwards.
func table(t testing.TB, p *pgxpool.Pool, kind string) string {
	name := "busline_" + kind + "_t" + strings.ToLower(rand.Text()[:12])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := p.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{name}.Sanitize()); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	return name
}

// storeURL returns the store URL of a fresh dedup table, created on open.
func storeURL(t testing.TB) string {
	p := pool(t)
	return withQuery(pgURL(), "table="+table(t, p, "dedup")+"&migrate=true")
}

func withQuery(raw, q string) string {
	if strings.Contains(raw, "?") {
		return raw + "&" + q
	}
	return raw + "?" + q
}

// effects creates a table the handlers write their effects to.
func effects(t testing.TB, p *pgxpool.Pool) string {
	name := table(t, p, "fx")
	if _, err := p.Exec(context.Background(), "CREATE TABLE "+name+" (event_id text NOT NULL, note text)"); err != nil {
		t.Fatal(err)
	}
	return name
}

func count(t testing.TB, p *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := p.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}
