package bench

import (
	"context"
	"testing"
	"time"

	"github.com/busline/busline/bus"
)

// TestPeerMetadata checks both kinds of peer metadata and that the fire
// time reads back from each, in every form the peers carry it.
func TestPeerMetadata(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 123456789, time.UTC)
	for _, envelope := range []bool{false, true} {
		md := map[string]string{}
		putPeerMetadata(func(k, v string) { md[k] = v }, envelope, "id-1", now)
		want := []string{sentAtKey}
		if envelope {
			want = []string{bus.MetaID, bus.MetaSource, bus.MetaType, bus.MetaTime, bus.MetaSpecVersion, bus.MetaContentType}
		}
		if len(md) != len(want) {
			t.Fatalf("envelope %v: metadata %v, want the keys %v", envelope, md, want)
		}
		for _, k := range want {
			if md[k] == "" {
				t.Fatalf("envelope %v: metadata %v lacks %s", envelope, md, k)
			}
		}
		if envelope && (md[bus.MetaID] != "id-1" || md[bus.MetaType] != event.Name()) {
			t.Fatalf("envelope: metadata %v", md)
		}
		if got := peerSentAt(func(k string) string { return md[k] }); !got.Equal(now) {
			t.Fatalf("envelope %v: fire time %v, want %v", envelope, got, now)
		}
		h := rawAMQPHeaders(envelope, now)
		if got := rawAMQPSentAt(h); !got.Equal(now) {
			t.Fatalf("envelope %v: AMQP headers %v: fire time %v, want %v", envelope, h, got, now)
		}
		if envelope && (len(h) != 7 || h["_watermill_message_uuid"] != h[bus.MetaID]) {
			t.Fatalf("envelope: AMQP headers %v, want the envelope and the UUID header", h)
		}
		fields := rawRedisFields(envelope, now, []byte(`{}`))
		values := map[string]any{}
		for i := 0; i+1 < len(fields); i += 2 {
			values[fields[i].(string)] = fields[i+1]
		}
		if len(values) != len(want)+1 || values["payload"] == nil {
			t.Fatalf("envelope %v: Redis fields %v", envelope, fields)
		}
		if got := peerSentAt(func(k string) string { v, _ := values[k].(string); return v }); !got.Equal(now) {
			t.Fatalf("envelope %v: Redis fields: fire time %v, want %v", envelope, got, now)
		}
	}
	if got := peerSentAt(func(string) string { return "" }); !got.IsZero() {
		t.Fatalf("no fire time read as %v", got)
	}
}

// TestRunEnvelope runs the peers with the envelope: their latency, read
// from ce-time, is a plausible one (a time not read would count from
// year 1).
func TestRunEnvelope(t *testing.T) {
	cases := []struct {
		name, url, addr, start string
	}{
		{"memory", "memory://", "", ""},
		{"redis", "redis://" + redisAddr + "/0", redisAddr, "redis-server --port 6379"},
		{"amqp", amqpURL, "127.0.0.1:5672", "rabbitmq-server"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.addr != "" {
				need(t, c.addr, c.start)
			}
			res, err := Run(context.Background(), Config{Transport: c.url, Events: 300, Size: 64, Concurrency: 4, Envelope: true,
				Sides: []string{SideWatermillTuned, SideRaw}})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Envelope || !res.Summary().Envelope {
				t.Fatalf("the result does not say the envelope: %+v", res.Summary())
			}
			sides := []Side{res.WatermillTuned}
			if c.addr != "" {
				sides = append(sides, res.Raw)
			}
			for _, s := range sides {
				if s.Name == "" || s.P50 <= 0 || s.P99 > time.Minute {
					t.Fatalf("side %s: p50 %v, p99 %v", s.Name, s.P50, s.P99)
				}
			}
		})
	}
}
