package redisurl_test

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/busline/busline/internal/redisurl"
	"github.com/busline/busline/transports"
)

func parse(t *testing.T, raw string) (redisurl.Config, error) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return redisurl.Parse(u)
}

func TestParseKinds(t *testing.T) {
	for _, c := range []struct {
		raw  string
		kind redisurl.Kind
	}{
		{"redis://127.0.0.1:6379/0", redisurl.Standalone},
		{"rediss://:pw@127.0.0.1:6379/0?pool_size=4", redisurl.Standalone},
		{"redis://a:6379?cluster=true", redisurl.Cluster},
		{"redis://a:6379?addr=b:6379", redisurl.Cluster},
		{"redis://s1:26379/0?master_name=m&addr=s2:26379&sentinel_password=sp", redisurl.Failover},
	} {
		got, err := parse(t, c.raw)
		if err != nil {
			t.Fatalf("%s: %v", c.raw, err)
		}
		if got.Kind != c.kind {
			t.Errorf("%s: kind %v, want %v", c.raw, got.Kind, c.kind)
		}
	}
	f, _ := parse(t, "redis://s1:26379/0?master_name=m&addr=s2:26379&sentinel_password=sp")
	if f.Failover.MasterName != "m" || f.Failover.SentinelPassword != "sp" || len(f.Failover.SentinelAddrs) != 2 {
		t.Errorf("sentinel options %+v", f.Failover)
	}
}

func TestParseErrors(t *testing.T) {
	for _, raw := range []string{"redis://a?cluster=maybe", "redis://a?nope=Secr3tValue", "redis://a?master_name=m&pool_size=Secr3tValue"} {
		_, err := parse(t, raw)
		if !errors.Is(err, transports.ErrInvalidURL) {
			t.Errorf("%s: %v, want ErrInvalidURL", raw, err)
		}
	}
	_, err := parse(t, "redis://a/0?master_name=m&password=Secr3tValue&bogus=1")
	if err == nil || strings.Contains(err.Error(), "Secr3tValue") {
		t.Errorf("error %v", err)
	}
}

// IsServerError matches the code of a server's error reply, not any
// error whose text starts alike.
func TestIsServerError(t *testing.T) {
	reply := serverReply("NOGROUP No such key 'x' or consumer group 'g'")
	if !redisurl.IsServerError(fmt.Errorf("read: %w", reply), "BUSYGROUP", "NOGROUP") {
		t.Error("a wrapped NOGROUP reply not matched")
	}
	if redisurl.IsServerError(reply, "NOGROUPS") || redisurl.IsServerError(errors.New("NOGROUP"), "NOGROUP") {
		t.Error("matched another code, or an error that is no server reply")
	}
}

// serverReply is an error reply as go-redis returns it (a redis.Error).
type serverReply string

func (r serverReply) Error() string { return string(r) }
func (serverReply) RedisError()     {}
