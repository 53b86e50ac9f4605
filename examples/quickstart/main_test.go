package main

import (
	"strings"
	"testing"
)

// The quickstart prints its transport URL without the password.
func TestTransportNameHidesSecrets(t *testing.T) {
	for _, u := range []string{"amqp://guest:S3cr3tPw@127.0.0.1:5672/", "redis://127.0.0.1:6379/0?master_name=m&password=S3cr3tPw"} {
		if got := transportName(u); strings.Contains(got, "S3cr3tPw") || !strings.Contains(got, "xxxxx") {
			t.Errorf("transportName(%q) = %q", u, got)
		}
	}
	if got := transportName(""); got != "memory://" {
		t.Errorf("default %q", got)
	}
}
