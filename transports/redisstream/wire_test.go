package redisstream

import (
	"maps"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/vmihailenco/msgpack"
)

func randomMetadata(r *rand.Rand) map[string]string {
	sizes := []int{0, 1, 31, 32, 255, 256, 70000}
	n := []int{0, 1, 5, 15, 16, 300}[r.IntN(6)]
	md := make(map[string]string, n)
	for i := range n {
		k := strings.Repeat("k", sizes[r.IntN(len(sizes)-1)]) + string(rune('a'+i%26)) + strings.Repeat("é", i)
		md[k] = strings.Repeat("v", sizes[r.IntN(len(sizes))])
	}
	return md
}

// The hand-written metadata codec and vmihailenco/msgpack (what
// watermill-redisstream uses) read each other's output.
func TestMetadataCodecMatchesMsgpack(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		md := randomMetadata(r)
		ours := appendMetadata(nil, md)
		var back map[string]string
		if err := msgpack.Unmarshal(ours, &back); err != nil {
			t.Fatalf("case %d: msgpack cannot read ours: %v", i, err)
		}
		if !maps.Equal(back, md) {
			t.Fatalf("case %d: msgpack read %d keys, want %d", i, len(back), len(md))
		}
		theirs, err := msgpack.Marshal(md)
		if err != nil {
			t.Fatal(err)
		}
		if len(theirs) != len(ours) {
			t.Fatalf("case %d: encoded size %d, msgpack's %d", i, len(ours), len(theirs))
		}
		got, err := parseMetadata(string(theirs))
		if err != nil || !maps.Equal(got, md) {
			t.Fatalf("case %d: parse of msgpack output: %v", i, err)
		}
	}
	if _, err := parseMetadata("\x81\xa1k"); err == nil {
		t.Fatal("truncated map parsed")
	}
	if _, err := parseMetadata("\xdf\xff\xff\xff\xff"); err == nil {
		t.Fatal("hostile map length parsed")
	}
}

// Entries Busline writes decode with watermill-redisstream's unmarshaller,
// and the other way round.
func TestWireMatchesWatermillMarshaller(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 50 {
		msg := message.NewMessage("id-"+strings.Repeat("x", i), []byte(strings.Repeat("p", i*7)))
		msg.Metadata = randomMetadata(r)
		fields, err := encode(msg)
		if err != nil {
			t.Fatal(err)
		}
		// As Redis returns them: every value a string.
		values := map[string]any{}
		for j := 0; j < len(fields); j += 2 {
			switch v := fields[j+1].(type) {
			case string:
				values[fields[j].(string)] = v
			case []byte:
				values[fields[j].(string)] = string(v)
			}
		}
		w, err := wireCodec.Unmarshal(values)
		if err != nil {
			t.Fatalf("case %d: Watermill cannot read our entry: %v", i, err)
		}
		if w.UUID != msg.UUID || string(w.Payload) != string(msg.Payload) || (len(msg.Metadata) > 0 && !maps.Equal(w.Metadata, msg.Metadata)) {
			t.Fatalf("case %d: Watermill read a different message", i)
		}
		theirs, err := wireCodec.Marshal("", msg)
		if err != nil {
			t.Fatal(err)
		}
		tv := map[string]any{}
		for k, v := range theirs {
			switch v := v.(type) {
			case string:
				tv[k] = v
			case []byte:
				tv[k] = string(v)
			}
		}
		got, err := decode("1-0", tv)
		if err != nil || got.UUID != msg.UUID || string(got.Payload) != string(msg.Payload) || !maps.Equal(got.Metadata, msg.Metadata) {
			t.Fatalf("case %d: we read Watermill's entry wrongly: %v", i, err)
		}
	}
}

func TestDecodeReportsPoison(t *testing.T) {
	for name, values := range map[string]map[string]any{
		"no uuid":      {"payload": "x"},
		"bad metadata": {fieldUUID: "u", fieldMetadata: "\xc1", fieldPayload: "x"},
		"not a string": {fieldUUID: int64(5)},
	} {
		msg, err := decode("7-0", values)
		if err == nil || msg == nil {
			t.Errorf("%s: decode = %v, %v; want a raw message and an error", name, msg, err)
		}
	}
}
