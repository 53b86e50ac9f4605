package redisstream

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Field shapes FuzzDecode gives an entry, one bit each.
const (
	fuzzUUID        = 1 << iota // the UUID field is present
	fuzzMetadata                // the metadata field is present
	fuzzPayload                 // the payload field is present
	fuzzUUIDNum                 // the UUID field is a number instead of a string
	fuzzMetadataNum             // the metadata field is a number
	fuzzPayloadNil              // the payload field is nil
	fuzzDeadFields              // dead-letter fields (reason, attempts, dead_at) are present
)

// FuzzDecode: any stream entry, whatever its fields hold, decodes into a
// message or into an error wrapping ErrDecode together with the best-effort
// message; it never panics. An entry that decodes re-encodes to an entry
// that decodes to the same message. Reading it as a dead letter never
// panics either.
func FuzzDecode(f *testing.F) {
	f.Add("1-0", uint8(fuzzUUID|fuzzMetadata|fuzzPayload), "0190-id", []byte("\x81\xa7ce-type\xa3a.b"), []byte(`{"n":1}`), "3")
	f.Add("1-1", uint8(fuzzUUID|fuzzMetadata|fuzzPayload), "id", []byte(""), []byte(""), "")
	f.Add("1-2", uint8(fuzzPayload), "", []byte(""), []byte("no uuid"), "")
	f.Add("1-3", uint8(fuzzUUID|fuzzMetadata|fuzzPayload), "id", []byte("\x81\xa7ce-ty"), []byte("x"), "")
	f.Add("1-4", uint8(fuzzUUID|fuzzMetadata|fuzzPayload), "id", []byte("\xdf\xff\xff\xff\xff"), []byte("x"), "")
	f.Add("1-5", uint8(fuzzUUID|fuzzMetadata|fuzzPayload|fuzzUUIDNum), "id", []byte("\x80"), []byte("x"), "")
	f.Add("1-6", uint8(fuzzUUID|fuzzMetadata|fuzzPayload|fuzzDeadFields), "id", []byte("\xc0"), []byte("x"), "-9223372036854775808")
	f.Add("1-7", uint8(fuzzUUID|fuzzMetadata|fuzzPayload), "id", []byte("\x81\xc4\x01k\xc4\x01v"), []byte("x"), "")
	f.Add("1-8", uint8(fuzzUUID|fuzzMetadata|fuzzPayload), "id", []byte("\x91\xa1x"), []byte("x"), "")
	f.Fuzz(func(t *testing.T, entryID string, shape uint8, uuid string, md, payload []byte, attempts string) {
		values := map[string]any{}
		if shape&fuzzUUID != 0 {
			if shape&fuzzUUIDNum != 0 {
				values[fieldUUID] = int64(len(uuid))
			} else {
				values[fieldUUID] = uuid
			}
		}
		if shape&fuzzMetadata != 0 {
			if shape&fuzzMetadataNum != 0 {
				values[fieldMetadata] = int64(len(md))
			} else {
				values[fieldMetadata] = string(md)
			}
		}
		if shape&fuzzPayload != 0 {
			if shape&fuzzPayloadNil != 0 {
				values[fieldPayload] = nil
			} else {
				values[fieldPayload] = string(payload)
			}
		}
		if shape&fuzzDeadFields != 0 {
			values[fieldReason], values[fieldAttempts], values[fieldDeadAt] = "r", attempts, attempts
		}

		msg, err := decode(entryID, values)
		if msg == nil {
			t.Fatalf("decode returned no message (error %v)", err)
		}
		_ = parseDeadLetter("g", redis.XMessage{ID: entryID, Values: values})
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("decode error %v does not wrap ErrDecode", err)
			}
			if strings.Contains(err.Error(), "runtime error") {
				t.Fatalf("decode recovered from a panic: %v", err)
			}
			return
		}
		if msg.UUID != uuid {
			t.Fatalf("decoded UUID %q, want %q", msg.UUID, uuid)
		}
		if string(msg.Payload) != values[fieldPayload] && !(values[fieldPayload] == nil && len(msg.Payload) == 0) {
			t.Fatalf("decoded payload %q, want %q", msg.Payload, values[fieldPayload])
		}
		if _, reserved := msg.Metadata[fieldUUID]; reserved {
			return // encode refuses such metadata, by design
		}
		fields, err := encode(msg)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again := map[string]any{}
		for i := 0; i+1 < len(fields); i += 2 {
			switch v := fields[i+1].(type) {
			case []byte:
				again[fields[i].(string)] = string(v)
			default:
				again[fields[i].(string)] = v
			}
		}
		back, err := decode(entryID, again)
		if err != nil {
			t.Fatalf("re-encoded entry does not decode: %v", err)
		}
		if back.UUID != msg.UUID || string(back.Payload) != string(msg.Payload) || !sameMetadata(back.Metadata, msg.Metadata) {
			t.Fatalf("round trip changed the message: %q %q %v, then %q %q %v",
				msg.UUID, msg.Payload, msg.Metadata, back.UUID, back.Payload, back.Metadata)
		}
	})
}

func sameMetadata(a, b map[string]string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return maps.Equal(a, b)
}

// FuzzParseMetadata: the metadata codec never panics nor allocates for a
// length the input cannot hold; what it parses re-encodes to bytes it
// parses to the same map.
func FuzzParseMetadata(f *testing.F) {
	for _, s := range []string{
		"", "\x80", "\xc0", "\x81\xa7ce-type\xa3a.b", "\x81\xd9\x07ce-type\xa3a.b",
		"\xde\x00\x01\xa1k\xa1v", "\xdf\x00\x00\x00\x01\xa1k\xa1v", "\x81\xc4\x01k\xc5\x00\x01v",
		"\x81\xa7ce-ty", "\xdf\xff\xff\xff\xff", "\x82\xa1k\xa1v", "\x81\xa1k\xa1v\x00", "\x91\xa1x",
		"\x81\xdb\xff\xff\xff\xff", "\x81\xa1k\x01",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		md, err := parseMetadata(string(data))
		if err != nil {
			if !errors.Is(err, errMsgpackShape) {
				t.Fatalf("error %v is not errMsgpackShape", err)
			}
			return
		}
		enc := appendMetadata(nil, md)
		back, err := parseMetadata(string(enc))
		if err != nil {
			t.Fatalf("re-encoded metadata does not parse: %v", err)
		}
		if !maps.Equal(back, md) {
			t.Fatalf("round trip changed the metadata: %v then %v", md, back)
		}
	})
}
