package faults

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/internal/brokertest"
	"github.com/busline/busline/transports/amqp"
)

// The brokers the suite uses, as the other broker tests: the local ones
// unless the environment says otherwise.
func redisAddr() string {
	return brokertest.RedisAddr()
}

func amqpURL() string {
	return brokertest.AMQPURL()
}

func randomName(n int) string { return strings.ToLower(rand.Text()[:n]) }

var reach sync.Map // broker name -> error (nil: reachable)

func reachable(name string, probe func() error) error {
	if v, ok := reach.Load(name); ok {
		err, _ := v.(error)
		return err
	}
	err := probe()
	if err != nil {
		reach.Store(name, err)
	} else {
		reach.Store(name, nil)
	}
	return err
}

func needRedis(t testing.TB) {
	t.Helper()
	err := reachable("redis", func() error {
		c := redis.NewClient(&redis.Options{Addr: redisAddr(), DialTimeout: time.Second, MaxRetries: -1})
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return c.Ping(ctx).Err()
	})
	if err != nil {
		unavailable(t, fmt.Sprintf("Redis at %s unreachable (%v); start one with `redis-server --port 6379` or set BUSLINE_TEST_REDIS", redisAddr(), err))
	}
}

func needAMQP(t testing.TB) {
	t.Helper()
	err := reachable("amqp", func() error {
		conn, err := amqp091.DialConfig(amqpURL(), amqp091.Config{Dial: amqp091.DefaultDial(2 * time.Second)})
		if err != nil {
			return err
		}
		return conn.Close()
	})
	if err != nil {
		unavailable(t, fmt.Sprintf("RabbitMQ at %s unreachable (%v); start it with `rabbitmq-server -detached` or set BUSLINE_AMQP_URL", redact(amqpURL()), err))
	}
}

// withQuery appends q to the query of raw.
func withQuery(raw, q string) string {
	if q == "" {
		return raw
	}
	if strings.Contains(raw, "?") {
		return raw + "&" + q
	}
	return raw + "?" + q
}

// redisURL returns a redis:// URL of the server at addr with a key prefix
// of the test's own, and the prefix; every key under it is deleted when
// the test ends.
func redisURL(t testing.TB, addr, query string) (raw, prefix string) {
	t.Helper()
	prefix = "blfaults-" + randomName(8) + ":"
	t.Cleanup(func() { brokertest.DeleteRedisPrefix(t, addr, prefix) })
	return withQuery("redis://"+addr+"/0?prefix="+url.QueryEscape(prefix), query), prefix
}

// sharedRedisURL is redisURL on the shared test Redis.
func sharedRedisURL(t testing.TB, query string) (raw, prefix string) {
	t.Helper()
	needRedis(t)
	return redisURL(t, redisAddr(), query)
}

// amqpTestURL returns an amqp:// URL on base (the test broker when empty)
// with an exchange and queue prefix of the test's own, and the queue
// prefix. The queues of the groups named in groups (group, dead-letter and
// delay queues) and the exchange are deleted when the test ends.
func amqpTestURL(t testing.TB, base, query string, groups ...string) (raw, queuePrefix string) {
	t.Helper()
	needAMQP(t)
	if base == "" {
		base = amqpURL()
	}
	exchange := "blfaults-" + randomName(8)
	t.Cleanup(func() { deleteAMQP(t, exchange, groups) })
	return withQuery(base, "exchange="+exchange+"&queue_prefix="+exchange+"."+withAmp(query)), exchange + "."
}

func withAmp(q string) string {
	if q == "" {
		return ""
	}
	return "&" + q
}

func deleteAMQP(t testing.TB, exchange string, groups []string) {
	prefix := exchange + "."
	// The record queues every Start writes to: group owners, schemas.
	queues := []string{prefix + exchange + ".records.owners", prefix + exchange + ".records.schemas"}
	for _, g := range groups {
		queues = append(queues, prefix+g, prefix+g+".dead")
		for _, step := range amqp.DefaultRetryLadder {
			queues = append(queues, prefix+g+".retry."+stepName(step))
		}
	}
	deleteQueues(t, queues, exchange)
}

// deleteQueues deletes the named queues of the test broker, then the
// exchange unless it is empty. Deleting what does not exist succeeds.
func deleteQueues(t testing.TB, queues []string, exchange string) {
	conn, err := amqp091.Dial(amqpURL())
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer ch.Close()
	for _, q := range queues {
		if _, err := ch.QueueDelete(q, false, false, false); err != nil {
			t.Logf("cleanup: delete queue %s: %v", q, err)
			if ch, err = conn.Channel(); err != nil {
				return
			}
		}
	}
	if exchange == "" {
		return
	}
	if err := ch.ExchangeDelete(exchange, false, false); err != nil {
		t.Logf("cleanup: delete exchange %s: %v", exchange, err)
	}
}

// stepName renders a retry step as the AMQP transport names its delay queues.
func stepName(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	default:
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
}

// amqpQueue reports the ready messages and consumers of a queue.
func amqpQueue(t testing.TB, name string) (messages, consumers int, ok bool) {
	t.Helper()
	conn, err := amqp091.Dial(amqpURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
	if err != nil {
		return 0, 0, false
	}
	return q.Messages, q.Consumers, true
}

// pgTable creates a table of the test's own with the given columns and
// drops it when the test ends; it returns its name.
func pgTable(t testing.TB, p *pgxpool.Pool, kind, columns string) string {
	t.Helper()
	name := "blfaults_" + kind + "_" + randomName(10)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if columns != "" {
		if _, err := p.Exec(ctx, "CREATE TABLE "+pgx.Identifier{name}.Sanitize()+" ("+columns+")"); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := p.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{name}.Sanitize()); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	return name
}

func pgURL() string                      { return brokertest.PostgresURL() }
func unavailable(t testing.TB, m string) { t.Helper(); brokertest.Unavailable(t, m) }
func redact(raw string) string           { return brokertest.Redact(raw) }
func needPostgres(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return brokertest.Postgres(t)
}
