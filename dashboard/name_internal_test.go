package dashboard

import (
	"strings"
	"testing"
)

func TestShownNameHidesSecrets(t *testing.T) {
	for in, want := range map[string]string{
		"price-monitor":                      "price-monitor",
		"redis://127.0.0.1:6379/0?prefix=a:": "redis://127.0.0.1:6379/0?prefix=a:",
		"redis://:hunter2@127.0.0.1:6379/0":  "redis://:xxxxx@127.0.0.1:6379/0",
		"amqp://guest:hunter2@rabbit:5672/":  "amqp://guest:xxxxx@rabbit:5672/",
		"redis://hunter2@127.0.0.1:6379/0":   "redis://xxxxx@127.0.0.1:6379/0",
		"redis://h:6379/0?master_name=m&sentinel_password=hunter2&Password=hunter2&x=1&api-key=hunter2&token=hunter2": "redis://h:6379/0?master_name=m&sentinel_password=xxxxx&Password=xxxxx&x=1&api-key=xxxxx&token=xxxxx",
		"redis://h/0?pass%77ord=hunter2": "redis://h/0?pass%77ord=xxxxx",
		"redis://h/0#hunter2":            "redis://h/0#xxxxx",
		"redis://:hunter2@h:bad port/":   "redis://xxxxx",
		"redis:user:hunter2@h":           "redis:xxxxx",
	} {
		got := shownName(in)
		if got != want {
			t.Errorf("shownName(%q) = %q, want %q", in, got, want)
		}
		if strings.Contains(got, "hunter2") {
			t.Errorf("shownName(%q) shows the secret: %q", in, got)
		}
	}
}
