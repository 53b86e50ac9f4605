package outbox

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TestSessionStartupParameters: the relay connects with the startup
// parameters of the pool's configuration and nothing more, so that it can
// go through a PgBouncer in session mode, which refuses connections that
// send other parameters ("unsupported startup parameter: statement_timeout").
// The server here records the startup message and refuses the connection.
func TestSessionStartupParameters(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan map[string]string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		be := pgproto3.NewBackend(c, c)
		for {
			msg, err := be.ReceiveStartupMessage()
			if err != nil {
				got <- nil
				return
			}
			switch m := msg.(type) {
			case *pgproto3.SSLRequest, *pgproto3.GSSEncRequest:
				_, _ = c.Write([]byte("N"))
			case *pgproto3.StartupMessage:
				got <- m.Parameters
				be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "08P01", Message: "refused by the test"})
				_ = be.Flush()
				return
			}
		}
	}()
	pool, err := pgxpool.New(context.Background(), "postgres://app@"+ln.Addr().String()+"/app?sslmode=disable&application_name=orders")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	o := &Outbox{pool: pool, opts: Options{}.withDefaults(), dbTimeout: defaultDBTimeout}
	if err := o.session(context.Background()); err == nil {
		t.Fatal("session on a server that refuses the connection: no error")
	}
	params := <-got
	if params == nil {
		t.Fatal("no startup message received")
	}
	for k, v := range params {
		switch k {
		case "user", "database", "application_name":
		default:
			t.Errorf("startup parameter %s=%s: the pool's configuration does not set it (PgBouncer refuses it)", k, v)
		}
	}
}

// TestNextRun: a run is the leading rows of one event name, at most limit.
func TestNextRun(t *testing.T) {
	rows := []row{{id: 1, event: "a.x"}, {id: 2, event: "a.x"}, {id: 3, event: "a.x"}, {id: 4, event: "b.y"}, {id: 5, event: "a.x"}}
	for _, tc := range []struct {
		from, limit, want int
	}{
		{0, 10, 3}, {0, 2, 2}, {0, 1, 1}, {3, 10, 1}, {4, 10, 1},
	} {
		if got := len(nextRun(rows[tc.from:], tc.limit)); got != tc.want {
			t.Errorf("nextRun(rows[%d:], %d) has %d rows, want %d", tc.from, tc.limit, got, tc.want)
		}
	}
}
