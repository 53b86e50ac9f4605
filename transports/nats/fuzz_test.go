package nats

import (
	"errors"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	natsgo "github.com/nats-io/nats.go"
)

// FuzzDecode: any headers and body decode without panicking, into a
// message with an ID, or an error wrapping ErrDecode; what encode writes
// decodes to the same message.
//
//	go test -run '^$' -fuzz '^FuzzDecode$' -fuzztime 60s ./transports/nats/
func FuzzDecode(f *testing.F) {
	f.Add("ce-type", "a.b", "01a2321c-036c-746f-83b1-bd8427446103", []byte(`{"n":1}`))
	f.Add("", "", "", []byte("\x00"))
	f.Add("Nats-Msg-Id", "x", "", []byte(nil))
	f.Add(HeaderReplayGroup, "g", "id", []byte("{}"))
	f.Fuzz(func(t *testing.T, key, value, id string, body []byte) {
		h := natsgo.Header{}
		if key != "" {
			h[key] = []string{value}
		}
		if id != "" {
			h[HeaderUUID] = []string{id}
		}
		msg, err := decode(h, body)
		if msg == nil || msg.UUID == "" {
			t.Fatalf("decode returned no message or no ID (%v)", err)
		}
		if err != nil && !errors.Is(err, ErrDecode) {
			t.Fatalf("error %v does not wrap ErrDecode", err)
		}
		if id != "" && (err != nil || msg.UUID != id) {
			t.Fatalf("event ID %q decoded as %q (%v)", id, msg.UUID, err)
		}
		// Round trip of a valid message.
		m := message.NewMessage("01a2321c-036c-746f-83b1-bd8427446103", body)
		if key != "" && !reservedHeader(key) {
			m.Metadata.Set(key, value)
		}
		nm, err := encode("p.a.b", m)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decode(nm.Header, nm.Data)
		if err != nil || !back.Equals(m) {
			t.Fatalf("round trip: %v %v, want %v", back, err, m)
		}
	})
}
