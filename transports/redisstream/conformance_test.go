package redisstream

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/transports/transporttest"
)

// TestConformance runs the transport conformance suite against the Redis
// at 127.0.0.1:6379, each test under a key prefix of its own. The
// reconnect test runs against a redis-server it starts on a port of its own.
func TestConformance(t *testing.T) {
	needRedis(t)
	transporttest.Run(t, harness)
}

// TestDriverConformance runs the driver tier of the suite.
func TestDriverConformance(t *testing.T) {
	needRedis(t)
	transporttest.RunDriver(t, harness)
}

var harness = transporttest.Harness{
	Name: "redis",
	URL: func(t testing.TB) string {
		if strings.HasSuffix(t.Name(), "/Reconnect") {
			return startRedisServer(t).url("")
		}
		return testURL(t, "")
	},
	OwnPendingFirst: true,
	Replay:          true,
	Retention:       true,
	InjectPoison: func(t testing.TB, url, topic string) {
		cfg, err := parseURLString(url)
		if err != nil {
			t.Fatal(err)
		}
		c := redis.NewClient(cfg.single)
		defer c.Close()
		// An entry without the fields of a Watermill message.
		if err := c.XAdd(context.Background(), &redis.XAddArgs{
			Stream: cfg.opts.Prefix + topic, Values: []any{"not", "a message"},
		}).Err(); err != nil {
			t.Fatal(err)
		}
	},
	RestartBroker: restartServerOf,
}

func TestScheduleConformance(t *testing.T) {
	needRedis(t)
	transporttest.RunSchedule(t, transporttest.Harness{
		Name: "redis",
		URL:  func(t testing.TB) string { return testURL(t, "") },
	}, transporttest.ScheduleCaps{Cancel: true, Counts: true})
}
