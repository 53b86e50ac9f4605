package pgstore_test

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/busline/busline/internal/brokertest"
)

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

func pgURL() string { return brokertest.PostgresURL() }

// pool connects to the test database or skips the test (fails it when
// BUSLINE_REQUIRE_BROKERS=1).
func pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return brokertest.Postgres(t)
}
