package bus_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/busline/busline/bus"
)

// FuzzValidateEventName: any input is accepted or rejected with
// ErrInvalidEvent, never a panic; accepted names are safe as Redis keys
// and AMQP routing keys.
func FuzzValidateEventName(f *testing.F) {
	f.Add("competitor_prices", "changed")
	f.Add("store.orders", "order_placed")
	f.Add("", "")
	f.Add("a..b", "x")
	f.Add("api", "with space")
	f.Add("ÄPI", "ñame")
	f.Fuzz(func(t *testing.T, api, name string) {
		err := bus.ValidateEventName(api, name)
		if err != nil {
			if !errors.Is(err, bus.ErrInvalidEvent) {
				t.Fatalf("error %v does not wrap ErrInvalidEvent", err)
			}
			return
		}
		full := api + "." + name
		if strings.ContainsAny(full, " *#{}:\x00\n") || strings.HasPrefix(full, ".") || strings.HasSuffix(full, ".") {
			t.Fatalf("accepted unsafe name %q", full)
		}
	})
}

// FuzzExpandProcessName: no panic; the result is a safe name or an ErrInvalidConfig.
func FuzzExpandProcessName(f *testing.F) {
	for _, s := range []string{"{hostname}", "{pid}-{random4}", "{random8}", "{", "}", "{}", "{unknown}", "a{hostname", "x y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, pattern string) {
		out, err := bus.ExpandProcessName(pattern)
		if err != nil {
			if !errors.Is(err, bus.ErrInvalidConfig) {
				t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
			}
			return
		}
		if out == "" || strings.ContainsAny(out, " {}\n") {
			t.Fatalf("%q expanded to unsafe %q", pattern, out)
		}
	})
}

// FuzzLoadConfig: any file content gives a Config or an error, never a panic.
func FuzzLoadConfig(f *testing.F) {
	f.Add("service: s\n")
	f.Add("service: s\nlistener:\n  ack_timeout: 5s\n  since: beginning\n")
	f.Add("listener: [1, 2]\n")
	f.Add("service: {a: b}\n")
	f.Add("\x00\xff")
	f.Add("listener:\n  retry:\n    tries: -1\n    multiplier: .nan\n")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, content string) {
		path := filepath.Join(dir, "bus.yaml")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := bus.LoadConfig(path)
		if err != nil {
			return
		}
		_ = cfg.Validate()
	})
}
