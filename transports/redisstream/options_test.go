package redisstream

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/busline/busline/transports"
)

func TestParseURLDefaults(t *testing.T) {
	c, err := parseURLString("redis://127.0.0.1:6379/2")
	if err != nil {
		t.Fatal(err)
	}
	o := c.opts
	if c.kind != standalone || c.single.Addr != "127.0.0.1:6379" || c.single.DB != 2 {
		t.Fatalf("client %v %+v", c.kind, c.single)
	}
	if o.Prefix != "busline:" || o.MaxLen != 100_000 || o.Block != 5*time.Second || o.ConsumerIdle != time.Hour ||
		o.PublishBatch != 256 || o.PublishPipes != 1 || o.Batch != 0 || o.ClaimInterval != 0 || o.DeadMaxLen != 0 {
		t.Fatalf("defaults = %+v", o)
	}
}

func TestParseURLOptions(t *testing.T) {
	c, err := parseURLString("rediss://u:secret@h:6380/0?prefix=app:&maxlen=10&maxlen.a.b=0&dead_maxlen=7&batch=32&block=250ms" +
		"&claim_interval=2s&consumer_idle=-1s&publish_batch=8&publish_pipes=3&read_ahead=5&dial_timeout=3s")
	if err != nil {
		t.Fatal(err)
	}
	o := c.opts
	if o.Prefix != "app:" || o.MaxLen != 10 || o.maxLen("a.b") != 0 || o.maxLen("c.d") != 10 || o.DeadMaxLen != 7 ||
		o.Batch != 32 || o.Block != 250*time.Millisecond || o.ClaimInterval != 2*time.Second || o.ConsumerIdle >= 0 ||
		o.PublishBatch != 8 || o.PublishPipes != 3 || o.readAheadFor(16) != 5 {
		t.Fatalf("options = %+v", o)
	}
	if c.single.TLSConfig == nil || c.single.Password != "secret" || c.single.DialTimeout != 3*time.Second {
		t.Fatalf("go-redis options = %+v", c.single)
	}
}

// Every name in OptionNames is one the URL parser reads (a tool that
// strips them before handing the URL to go-redis strips only those).
func TestOptionNames(t *testing.T) {
	valid := map[string]string{"prefix": "p:", "block": "1s", "claim_interval": "1s", "consumer_idle": "1h", "no_schedule_mover": "true"}
	for _, name := range OptionNames {
		v, ok := valid[name]
		if !ok {
			v = "1"
		}
		if _, err := parseURLString("redis://h/0?" + name + "=" + v); err != nil {
			t.Errorf("option %s=%s: %v", name, v, err)
		}
	}
}

func TestReadAheadOption(t *testing.T) {
	for q, want := range map[string]int{"": 32, "read_ahead=-1": 0, "read_ahead=0": 32, "read_ahead=3": 3} {
		c, err := parseURLString("redis://h/0?" + q)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.opts.readAheadFor(16); got != want {
			t.Errorf("%q: read ahead %d for a listener of concurrency 16, want %d", q, got, want)
		}
	}
}

func TestParseURLClientKinds(t *testing.T) {
	c, err := parseURLString("redis://a:7000?addr=b:7000&addr=c:7000")
	if err != nil || c.kind != cluster || len(c.clusterO.Addrs) != 3 || c.opts.Block != time.Second {
		t.Fatalf("cluster: %v %v", c.kind, err)
	}
	if c, err = parseURLString("redis://a:7000?cluster=true"); err != nil || c.kind != cluster {
		t.Fatalf("cluster=true: %v %v", c.kind, err)
	}
	if c, err = parseURLString("redis://s1:26379?master_name=mymaster&addr=s2:26379"); err != nil || c.kind != failover || c.failO.MasterName != "mymaster" {
		t.Fatalf("sentinel: %v %v", c.kind, err)
	}
}

func TestParseURLErrors(t *testing.T) {
	for _, raw := range []string{
		"redis://u:hunter2@h/0?maxlen=-1",
		"redis://u:hunter2@h/0?block=soon",
		"redis://u:hunter2@h/0?batch=x",
		"redis://u:hunter2@h/0?read_ahead=-2",
		"redis://u:hunter2@h/0?no_such_option=1",
		"redis://u:hunter2@h/0?cluster=maybe",
		"redis://u:hunter2@h/0?maxlen.e.x=many",
	} {
		_, err := parseURLString(raw)
		if !errors.Is(err, transports.ErrInvalidURL) {
			t.Errorf("%s: err = %v, want ErrInvalidURL", raw, err)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: error shows the password: %v", raw, err)
		}
	}
}

func TestVersionCheck(t *testing.T) {
	for v, ok := range map[string]bool{"6.2.0": true, "6.2": true, "7.0.15": true, "10.0.0": true, "6.0.9": false, "5.0.14": false} {
		if versionAtLeast(v, 6, 2) != ok {
			t.Errorf("versionAtLeast(%s, 6, 2) = %v", v, !ok)
		}
	}
	if v := infoField("# Server\r\nredis_version:6.0.9\r\nredis_mode:standalone\r\n", "redis_version"); v != "6.0.9" {
		t.Errorf("infoField = %q", v)
	}
}
