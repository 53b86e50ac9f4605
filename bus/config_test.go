package bus_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/transports"
	_ "github.com/busline/busline/transports/memory"
)

func TestNewRejectsBadConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  bus.Config
		want []string
		is   error
	}{
		{"no service", bus.Config{}, []string{"Service is required"}, bus.ErrInvalidConfig},
		{"bad service", bus.Config{Service: "a b"}, []string{"Service"}, bus.ErrInvalidConfig},
		{"unknown placeholder", bus.Config{Service: "s", Process: "{nope}"}, []string{"{nope}"}, bus.ErrInvalidConfig},
		{"unknown scheme", bus.Config{Service: "s", Transport: "kafka://host"}, []string{`"kafka"`, "registered"}, transports.ErrUnknownScheme},
		{"known scheme not imported", bus.Config{Service: "s", Transport: "amqp://u:secret@host/"}, []string{"github.com/busline/busline/transports/amqp"}, transports.ErrUnknownScheme},
		{"no scheme", bus.Config{Service: "s", Transport: "127.0.0.1:6379"}, []string{"URL"}, transports.ErrInvalidURL},
		{"bad memory option", bus.Config{Service: "s", Transport: "memory://?nope=1"}, []string{"nope"}, transports.ErrInvalidURL},
		{"unknown store", bus.Config{Service: "s", Idempotency: "mongo://x"}, []string{`"mongo"`}, nil},
		{"negative concurrency", bus.Config{Service: "s", Listener: bus.ListenerOptions{Concurrency: -1}}, []string{"Concurrency"}, bus.ErrInvalidConfig},
		{"negative ack timeout", bus.Config{Service: "s", Listener: bus.ListenerOptions{AckTimeout: -5 * time.Second}}, []string{"AckTimeout is -5s"}, bus.ErrInvalidConfig},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := bus.New(c.cfg)
			if err == nil {
				b.Close()
				t.Fatal("New accepted a bad configuration")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %q does not match %v", err, c.is)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestProcessNamePlaceholders(t *testing.T) {
	host, _ := os.Hostname()
	got, err := bus.ExpandProcessName("{hostname}-{pid}-{random4}-{random8}")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(strings.TrimPrefix(got, host+"-"), "-")
	if !strings.HasPrefix(got, host+"-") || len(parts) != 3 || len(parts[1]) != 4 || len(parts[2]) != 8 {
		t.Errorf("expanded %q, want hostname-pid-xxxx-xxxxxxxx", got)
	}
	a, _ := bus.ExpandProcessName("{random4}")
	b, _ := bus.ExpandProcessName("{random4}")
	c, _ := bus.ExpandProcessName("{random4}")
	if a == b && b == c {
		t.Errorf("{random4} gave %q three times", a)
	}
}

func TestDefaults(t *testing.T) {
	b, err := bus.New(bus.Config{Service: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if len(b.Process()) != 4 {
		t.Errorf("default process name %q, want 4 random characters", b.Process())
	}
	if b.Service() != "svc" {
		t.Errorf("Service() = %q", b.Service())
	}
}

func TestLoadConfigWithEnvOverride(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bus.yaml")
	yaml := `service: from-file
process: "{hostname}"
transport: memory://shared
listener:
  ack_timeout: 90s
  concurrency: 4
  max_deliveries: 5
  since: beginning
  retry:
    tries: 2
    initial_interval: 10ms
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BUSLINE_SERVICE", "from-env")
	t.Setenv("BUSLINE_TRANSPORT", "")
	cfg, err := bus.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Service != "from-env" {
		t.Errorf("Service = %q, want the environment to win", cfg.Service)
	}
	if cfg.Transport != "memory://shared" || cfg.Process != "{hostname}" {
		t.Errorf("Transport, Process = %q, %q, want the file's", cfg.Transport, cfg.Process)
	}
	l := cfg.Listener
	if l.AckTimeout != 90*time.Second || l.Concurrency != 4 || l.MaxDeliveries != 5 || !l.Since.IsBeginning() ||
		l.Retry.Tries != 2 || l.Retry.InitialInterval != 10*time.Millisecond {
		t.Errorf("listener options = %+v", l)
	}

	t.Setenv("BUSLINE_CONFIG", path)
	t.Setenv("BUSLINE_PROCESS", "p-env")
	cfg, err = bus.ConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Process != "p-env" || cfg.Service != "from-env" || cfg.Listener.Concurrency != 4 {
		t.Errorf("ConfigFromEnv with BUSLINE_CONFIG = %+v", cfg)
	}
}

// A configuration file's error is ErrInvalidConfig and names the line and
// what is wrong in the terms of the file, never the Go types it is
// decoded into.
func TestLoadConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for name, c := range map[string]struct{ content, want string }{
		"unknown key":        {"service: s\nservise: typo\n", `line 2: unknown key "servise"`},
		"bad duration":       {"service: s\nlistener:\n  ack_timeout: soon\n", `line 3: "soon" is not a duration`},
		"bad since":          {"service: s\nlistener:\n  since: yesterday\n", `line 3: since "yesterday" is not "new", "beginning" or an RFC 3339 time`},
		"since as a list":    {"service: s\nlistener:\n  since: [new]\n", `line 3: since is not "new"`},
		"listener as list":   {"service: s\nlistener:\n  - concurrency: 4\n", "line 3: a list where a mapping of keys"},
		"service as list":    {"service: [s]\n", "line 1: a list where a string is expected"},
		"listener as value":  {"service: s\nlistener: 4\n", `line 2: "4" is not a mapping of keys`},
		"negative tries":     {"service: s\nlistener:\n  retry:\n    tries: -3\n", "listener.retry.tries is -3"},
		"multiplier below 1": {"service: s\nlistener:\n  retry:\n    multiplier: 0.5\n", "listener.retry.multiplier is 0.5"},
		"initial above max":  {"service: s\nlistener:\n  retry:\n    initial_interval: 5s\n    max_interval: 1ms\n", "listener.retry.initial_interval 5s is above listener.retry.max_interval 1ms"},
		"jitter of 1":        {"service: s\nlistener:\n  retry:\n    jitter: 1\n", "listener.retry.jitter is 1"},
		"retry with others": {"servise: s\nlistener:\n  retry:\n    tries: -1\n    jitter: 2\n",
			`line 1: unknown key "servise" (did you mean "service"?); listener.retry.tries is -1; at least 1 (1: no in-process retry), or 0 for the default; listener.retry.jitter is 2`},
		"three errors": {"servise: s\nlistener:\n  since: yesterday\n  timeout: soon\n",
			`line 1: unknown key "servise" (did you mean "service"?); line 3: since "yesterday" is not "new", "beginning" or an RFC 3339 time; line 4: "soon" is not a duration`},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
		if err := os.WriteFile(path, []byte(c.content), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := bus.LoadConfig(path)
		if err == nil {
			err = cfg.Validate() // what New does with it
		}
		if !errors.Is(err, bus.ErrInvalidConfig) {
			t.Errorf("%s: LoadConfig error = %v, want ErrInvalidConfig", name, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, c.want) || strings.Contains(msg, "struct") || strings.Count(msg, "invalid configuration") != 1 {
			t.Errorf("%s: LoadConfig error %q, want it to say %q once, with no Go types", name, msg, c.want)
		}
	}
	if _, err := bus.LoadConfig(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// A value the YAML parser chokes on is quoted in its error, and may be a
// URL or a connection string holding a password: it is redacted.
func TestLoadConfigErrorsHideSecrets(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"tagged url":    "service: s\ntransport: !!int redis://:S3CRETzz@127.0.0.1:6379/0\n",
		"tagged dsn":    "service: s\ntransport: !!int host=db password=S3CRETzz\n",
		"since as dsn":  "service: s\nlistener:\n  since: host=h password=S3CRETzz\n",
		"number as url": "service: s\nmax_payload_bytes: redis://u:S3CRETzz@h\n",
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := bus.LoadConfig(path)
		if err == nil {
			err = cfg.Validate()
		}
		if !errors.Is(err, bus.ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", name, err)
			continue
		}
		if strings.Contains(err.Error(), "S3CRET") {
			t.Errorf("%s: the error shows the password: %v", name, err)
		}
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Setenv("BUSLINE_CONFIG", "")
	t.Setenv("BUSLINE_SERVICE", "svc")
	t.Setenv("BUSLINE_PROCESS", "{hostname}")
	t.Setenv("BUSLINE_TRANSPORT", "memory://x")
	t.Setenv("BUSLINE_IDEMPOTENCY", "memory://")
	cfg, err := bus.ConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Service != "svc" || cfg.Process != "{hostname}" || cfg.Transport != "memory://x" || cfg.Idempotency != "memory://" {
		t.Errorf("ConfigFromEnv = %+v", cfg)
	}
}

// A listener's retry policy is checked as the service's is.
func TestListenRefusesABadRetryPolicy(t *testing.T) {
	b, err := bus.New(bus.Config{Service: "s", Transport: "memory://"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ev := bus.NewEvent[int]("retry", "checked")
	err = bus.Listen(b, ev, "l", func(context.Context, bus.Delivery[int]) error { return nil },
		bus.WithRetry(bus.RetryPolicy{Multiplier: 0.5}))
	if !errors.Is(err, bus.ErrInvalidConfig) || !strings.Contains(err.Error(), "Retry.Multiplier") {
		t.Fatalf("Listen with Multiplier 0.5: %v; want ErrInvalidConfig naming Retry.Multiplier", err)
	}
}
