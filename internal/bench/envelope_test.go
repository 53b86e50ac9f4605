package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/busline/busline/bus"
)

// TestPeerMetadata checks both kinds of peer metadata and that the fire
// time reads back from each, in every form the peers carry it.
func TestPeerMetadata(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 123456789, time.UTC)
	envelopeKeys := []string{bus.MetaID, bus.MetaSource, bus.MetaType, bus.MetaTime, bus.MetaSpecVersion, bus.MetaContentType}
	for _, envelope := range []bool{false, true} {
		st := newStamp(envelope, now)
		md := map[string]string{}
		putPeerMetadata(func(k, v string) { md[k] = v }, st, "id-1")
		want := []string{sentAtKey}
		if envelope {
			want = envelopeKeys
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

		p := rawAMQPPublishing(envelope, now, []byte(`{}`))
		if got := rawAMQPSentAt(p.Headers); !got.Equal(now) {
			t.Fatalf("envelope %v: AMQP headers %v: fire time %v, want %v", envelope, p.Headers, got, now)
		}
		if envelope && (len(p.Headers) != 7 || p.Headers["_watermill_message_uuid"] != p.Headers[bus.MetaID] ||
			p.MessageId != p.Headers[bus.MetaID] || !p.Timestamp.Equal(now)) {
			t.Fatalf("envelope: AMQP message %+v, want the envelope, the UUID header and the message-id and timestamp properties", p)
		}

		fields := rawRedisFields(st, []byte(`{}`))
		values := map[string]any{}
		for i := 0; i+1 < len(fields); i += 2 {
			values[fields[i].(string)] = fields[i+1]
		}
		if values["payload"] == nil || len(values) != map[bool]int{false: 2, true: 3}[envelope] {
			t.Fatalf("envelope %v: Redis fields %v", envelope, fields)
		}
		if envelope {
			lines, _ := values["metadata"].(string)
			for _, k := range envelopeKeys {
				if lineValue(lines, k) == "" {
					t.Fatalf("envelope: Redis metadata %q lacks %s", lines, k)
				}
			}
			if lineValue(lines, bus.MetaID) != values["_watermill_message_uuid"] {
				t.Fatalf("envelope: Redis fields %v: ce-id is not the UUID", fields)
			}
		}
		if got := rawRedisSentAt(values); !got.Equal(now) {
			t.Fatalf("envelope %v: Redis fields: fire time %v, want %v", envelope, got, now)
		}
	}
	if got := peerSentAt(func(string) string { return "" }); !got.IsZero() {
		t.Fatalf("no fire time read as %v", got)
	}
}

// TestRawID checks the raw loops' IDs: UUID version 4 layout, distinct.
func TestRawID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := rawID()
		if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[14] != '4' || id[18] != '-' || !strings.ContainsRune("89ab", rune(id[19])) || id[23] != '-' {
			t.Fatalf("rawID() = %q, not a version 4 UUID", id)
		}
		if seen[id] {
			t.Fatalf("rawID() repeated %q", id)
		}
		seen[id] = true
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
