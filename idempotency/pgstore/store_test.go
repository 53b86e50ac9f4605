package pgstore_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/busline/busline/idempotency"
	"github.com/busline/busline/idempotency/pgstore"
	"github.com/busline/busline/idempotency/storetest"
	"github.com/busline/busline/transports"
)

func TestConformance(t *testing.T) {
	pool(t)
	storetest.Run(t, storetest.Harness{URL: storeURL, Shared: true})
}

func TestOpenWithoutTableNamesMigrate(t *testing.T) {
	p := pool(t)
	name := table(t, p, "dedup")
	_, err := idempotency.Open(context.Background(), withQuery(pgURL(), "table="+name), nil)
	if !errors.Is(err, pgstore.ErrNoTable) || !strings.Contains(err.Error(), "Migrate") {
		t.Fatalf("open without the table: %v; want ErrNoTable naming pgstore.Migrate", err)
	}
	if err := pgstore.Migrate(context.Background(), p, name); err != nil {
		t.Fatal(err)
	}
	s, err := idempotency.Open(context.Background(), withQuery(pgURL(), "table="+name), nil)
	if err != nil {
		t.Fatalf("open after Migrate: %v", err)
	}
	_ = s.Close()
}

func TestMigrateConcurrentAndIdempotent(t *testing.T) {
	p := pool(t)
	name := table(t, p, "dedup")
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- pgstore.Migrate(context.Background(), p, name)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Migrate: %v", err)
		}
	}
	if n := count(t, p, "SELECT count(*) FROM pg_indexes WHERE tablename = $1 AND indexdef LIKE '%(expires_at)%'", name); n != 1 {
		t.Fatalf("%d expiry indexes on %s, want 1", n, name)
	}
	// Inside the caller's own transaction.
	tx, err := p.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := pgstore.Migrate(context.Background(), tx, name); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestOpenURLOptions(t *testing.T) {
	ctx := context.Background()
	for _, q := range []string{"table=bad-name", "table=", "migrate=sometimes", "cleanup=soon", "cleanup=-1m"} {
		if s, err := idempotency.Open(ctx, withQuery(pgURL(), q), nil); err == nil {
			_ = s.Close()
			t.Errorf("Open with %s succeeded, want an error", q)
		}
	}
	_, err := idempotency.Open(ctx, "postgres://postgres:s3cret@127.0.0.1:1/test?connect_timeout=2", nil)
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("unreachable database: err = %v; want an error without the password", err)
	}
	if _, err := pgstore.Schema("x; DROP TABLE y"); err == nil {
		t.Fatal("Schema accepted an injected table name")
	}
}

// A user the server refuses is transports.ErrAccessRefused, not an
// unreachable server, and its password is never shown.
func TestOpenAccessRefused(t *testing.T) {
	pool(t) // skips (or fails) without the database
	u, err := url.Parse(pgURL())
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("busline_nobody", "s3cret")
	s, err := idempotency.Open(context.Background(), u.String(), nil)
	if err == nil {
		_ = s.Close()
		t.Fatal("Open as an unknown user succeeded")
	}
	if !errors.Is(err, transports.ErrAccessRefused) || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("Open as an unknown user: %v; want transports.ErrAccessRefused without the password", err)
	}
}

func TestCleanupDeletesOnlyExpiredRows(t *testing.T) {
	p := pool(t)
	name := table(t, p, "dedup")
	s, err := pgstore.New(context.Background(), p, pgstore.Options{Table: name, AutoMigrate: true, CleanupInterval: -1, CleanupBatch: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	commit := func(key string, retention time.Duration) {
		st, l, err := s.Begin(ctx, key, time.Minute)
		if err != nil || st != idempotency.Fresh {
			t.Fatalf("Begin(%s) = %v, %v", key, st, err)
		}
		if err := s.Commit(ctx, l, retention); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"g:a", "g:b", "g:c", "g:d", "g:e"} {
		commit(k, time.Millisecond)
	}
	commit("g:kept", time.Hour)
	if _, _, err := s.Begin(ctx, "g:leased", time.Hour); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for count(t, p, "SELECT count(*) FROM "+name+" WHERE expires_at < now()") < 5 {
		if time.Now().After(deadline) {
			t.Fatal("rows never expired")
		}
		time.Sleep(5 * time.Millisecond)
	}
	n, err := s.Cleanup(ctx)
	if err != nil || n != 5 {
		t.Fatalf("Cleanup = %d, %v; want 5 expired rows deleted in batches of 2", n, err)
	}
	if left := count(t, p, "SELECT count(*) FROM "+name); left != 2 {
		t.Fatalf("%d rows left, want the live done row and the live lease", left)
	}
}

func TestCleanupLoopRunsAndStopsOnClose(t *testing.T) {
	p := pool(t)
	name := table(t, p, "dedup")
	s, err := pgstore.New(context.Background(), p, pgstore.Options{Table: name, AutoMigrate: true, CleanupInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, l, err := s.Begin(ctx, "g:a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, l, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for count(t, p, "SELECT count(*) FROM "+name) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the periodic clean-up never deleted the expired row")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Ping(ctx); err != nil {
		t.Fatalf("Close closed a pool the store did not open: %v", err)
	}
}

// A database that does not exist is a fix of the URL, not a wait.
func TestOpenMissingDatabaseIsInvalidConfig(t *testing.T) {
	pool(t) // skips (or fails) without the database
	u, err := url.Parse(pgURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/busline_no_such_database"
	s, err := idempotency.Open(context.Background(), u.String(), nil)
	if err == nil {
		_ = s.Close()
		t.Fatal("Open of a missing database succeeded")
	}
	if !errors.Is(err, transports.ErrInvalidConfig) {
		t.Fatalf("Open of a missing database: %v; want transports.ErrInvalidConfig", err)
	}
}

// A URL parameter the server does not know is a fix of the URL too.
func TestOpenUnknownParameterIsInvalidConfig(t *testing.T) {
	pool(t) // skips (or fails) without the database
	u, err := url.Parse(pgURL())
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("busline_no_such_parameter", "1")
	u.RawQuery = q.Encode()
	s, err := idempotency.Open(context.Background(), u.String(), nil)
	if err == nil {
		_ = s.Close()
		t.Fatal("Open with an unknown parameter succeeded")
	}
	if !errors.Is(err, transports.ErrInvalidConfig) {
		t.Fatalf("Open with an unknown parameter: %v; want transports.ErrInvalidConfig", err)
	}
}
