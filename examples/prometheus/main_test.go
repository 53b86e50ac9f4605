package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestCheckPrintsTheBusMetrics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out strings.Builder
	if err := run(ctx, "127.0.0.1:0", true, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`messaging_client_sent_messages_total{`,
		`messaging_client_consumed_messages_total{busline_outcome="ok"`,
		`busline_consumer_lag{`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("metrics lack %s:\n%s", want, out.String())
		}
	}
}
