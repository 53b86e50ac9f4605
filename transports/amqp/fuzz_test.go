package amqp

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v2/pkg/amqp"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// FuzzUnmarshal: any AMQP delivery, whatever its headers hold, unmarshals
// into a message (an error only for one without an event ID, then wrapping
// ErrNoEventID); it never panics; Busline's own headers never leak into the
// metadata; the attempt number is at least 1; reading it as a dead letter
// and republishing it never panic, and a republished delivery carries
// headers AMQP can encode.
//
// The headers come from the fuzz input decoded as an AMQP 0-9-1 field
// table (the wire format RabbitMQ sends; see fuzzTable), so every value
// type a broker can put there is reached: x-death tables, x-delivery-count
// numbers, decimals, timestamps, byte arrays, nested arrays.
func FuzzUnmarshal(f *testing.F) {
	f.Add("0190-id", "", "application/json", false, []byte(`{"n":1}`), fieldTable(
		fieldStr("ce-type", "a.b"), fieldStr(HeaderAttempt, "2")))
	f.Add("", "mid", "", true, []byte("x"), fieldTable(fieldLong("x-delivery-count", 3)))
	f.Add("", "", "", false, []byte("no id"), []byte{})
	f.Add("id", "", "", true, []byte("x"), fieldTable(
		fieldStr(HeaderAttempt, "9223372036854775807"), fieldLong("x-delivery-count", math.MaxInt64)))
	f.Add("id", "", "", false, []byte("x"), fieldTable(fieldStr(HeaderAttempt, "-5")))
	xDeath := fieldTable(fieldLong("count", 1), fieldStr("queue", "q"), fieldStr("reason", "expired"))
	f.Add("id", "", "", false, []byte{}, fieldTable(
		fieldRaw("x-death", 'A', append(append([]byte{'F'}, binary.BigEndian.AppendUint32(nil, uint32(len(xDeath)))...), xDeath...)),
		fieldRaw("dec", 'D', []byte{2, 0, 0, 4, 210}),
		fieldRaw("ts", 'T', binary.BigEndian.AppendUint64(nil, 1714564800)),
		fieldRaw("nested", 'F', fieldTable(fieldStr("k", "v"))),
		fieldRaw("bytes", 'x', append(binary.BigEndian.AppendUint32(nil, 3), "raw"...)),
		fieldRaw("nil", 'V', nil),
		fieldRaw("f64", 'd', binary.BigEndian.AppendUint64(nil, math.Float64bits(math.NaN()))),
	))
	f.Add("id", "", "", false, []byte{}, fieldTable(
		fieldRaw(HeaderDeadAttempts, 'l', binary.BigEndian.AppendUint64(nil, 1<<63)),
		fieldStr(HeaderDeadReason, "boom"), fieldStr(HeaderDeadAt, "not a time")))
	f.Fuzz(func(t *testing.T, uuidHeader, messageID, contentType string, redelivered bool, body, table []byte) {
		headers := fuzzTable(table, 0)
		if uuidHeader != "" {
			headers[wamqp.DefaultMessageUUIDHeaderKey] = uuidHeader
		}
		d := amqp091.Delivery{
			Headers: headers, MessageId: messageID, ContentType: contentType,
			Redelivered: redelivered, Body: body,
		}
		msg, err := Marshaler{}.Unmarshal(d)
		if msg == nil {
			t.Fatalf("Unmarshal returned no message (error %v)", err)
		}
		wantID := headerString(headers[wamqp.DefaultMessageUUIDHeaderKey])
		if wantID == "" {
			wantID = messageID
		}
		switch {
		case wantID == "" && !errors.Is(err, ErrNoEventID):
			t.Fatalf("delivery without an event ID: error %v, want ErrNoEventID", err)
		case wantID != "" && err != nil:
			t.Fatalf("delivery with event ID %q: error %v", wantID, err)
		case wantID != "" && msg.UUID != wantID:
			t.Fatalf("UUID %q, want %q", msg.UUID, wantID)
		case msg.UUID == "":
			t.Fatal("empty UUID")
		}
		for k := range msg.Metadata {
			if strings.HasPrefix(k, "x-busline-") || k == wamqp.DefaultMessageUUIDHeaderKey {
				t.Fatalf("header %q leaked into the metadata", k)
			}
		}
		if n := attempt(d); n < 1 {
			t.Fatalf("attempt %d, want at least 1 (headers %v)", n, headers)
		}
		_ = toDeadLetter("g", d)
		pub := republishing(d, map[string]string{HeaderAttempt: "2", HeaderTopic: ""})
		if err := pub.Headers.Validate(); err != nil {
			t.Fatalf("republished headers cannot be encoded: %v", err)
		}
	})
}

// fuzzTable decodes data as the body of an AMQP field table (pairs of a
// short-string name and a typed value, as amqp091 reads them from the
// wire), keeping what it read before the first malformed field. Nesting
// stops at depth 8.
func fuzzTable(data []byte, depth int) amqp091.Table {
	t := amqp091.Table{}
	r := fuzzReader{b: data}
	for !r.done() {
		n, ok := r.byte()
		if !ok {
			break
		}
		name, ok := r.bytes(int(n))
		if !ok {
			break
		}
		v, ok := r.value(depth)
		if !ok {
			break
		}
		t[string(name)] = v
	}
	return t
}

type fuzzReader struct {
	b []byte
	i int
}

func (r *fuzzReader) done() bool { return r.i >= len(r.b) }

func (r *fuzzReader) byte() (byte, bool) {
	if r.done() {
		return 0, false
	}
	r.i++
	return r.b[r.i-1], true
}

func (r *fuzzReader) bytes(n int) ([]byte, bool) {
	if n < 0 || r.i+n > len(r.b) {
		return nil, false
	}
	r.i += n
	return r.b[r.i-n : r.i], true
}

func (r *fuzzReader) uint(size int) (uint64, bool) {
	b, ok := r.bytes(size)
	if !ok {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v, true
}

// value reads one typed field value: the type letters of amqp091's reader.
func (r *fuzzReader) value(depth int) (any, bool) {
	kind, ok := r.byte()
	if !ok {
		return nil, false
	}
	u := func(size int) uint64 { v, _ := r.uint(size); return v }
	need := func(size int) bool { return r.i+size <= len(r.b) }
	switch kind {
	case 't':
		if !need(1) {
			return nil, false
		}
		return u(1) != 0, true
	case 'B':
		if !need(1) {
			return nil, false
		}
		return byte(u(1)), true
	case 'b':
		if !need(1) {
			return nil, false
		}
		return int8(u(1)), true
	case 's':
		if !need(2) {
			return nil, false
		}
		return int16(u(2)), true
	case 'u':
		if !need(2) {
			return nil, false
		}
		return uint16(u(2)), true
	case 'I':
		if !need(4) {
			return nil, false
		}
		return int32(u(4)), true
	case 'i':
		if !need(4) {
			return nil, false
		}
		return uint32(u(4)), true
	case 'l':
		if !need(8) {
			return nil, false
		}
		return int64(u(8)), true
	case 'f':
		if !need(4) {
			return nil, false
		}
		return math.Float32frombits(uint32(u(4))), true
	case 'd':
		if !need(8) {
			return nil, false
		}
		return math.Float64frombits(u(8)), true
	case 'D':
		if !need(5) {
			return nil, false
		}
		return amqp091.Decimal{Scale: uint8(u(1)), Value: int32(u(4))}, true
	case 'T':
		if !need(8) {
			return nil, false
		}
		return time.Unix(int64(u(8)), 0), true
	case 'S', 'x':
		n, ok := r.uint(4)
		if !ok {
			return nil, false
		}
		b, ok := r.bytes(int(min(n, uint64(len(r.b)+1))))
		if !ok {
			return nil, false
		}
		if kind == 'x' {
			return append([]byte(nil), b...), true
		}
		return string(b), true
	case 'A', 'F':
		n, ok := r.uint(4)
		if !ok {
			return nil, false
		}
		b, ok := r.bytes(int(min(n, uint64(len(r.b)+1))))
		if !ok || depth >= 8 {
			return nil, false
		}
		if kind == 'F' {
			return fuzzTable(b, depth+1), true
		}
		var arr []any
		sub := fuzzReader{b: b}
		for !sub.done() {
			v, ok := sub.value(depth + 1)
			if !ok {
				break
			}
			arr = append(arr, v)
		}
		return arr, true
	case 'V':
		return nil, true
	}
	return nil, false
}

// Encoders of seed tables in the same format.

func fieldTable(fields ...[]byte) []byte {
	var b []byte
	for _, f := range fields {
		b = append(b, f...)
	}
	return b
}

func fieldRaw(name string, kind byte, value []byte) []byte {
	b := append([]byte{byte(len(name))}, name...)
	b = append(b, kind)
	if kind == 'F' || kind == 'A' {
		b = binary.BigEndian.AppendUint32(b, uint32(len(value)))
	}
	return append(b, value...)
}

func fieldStr(name, v string) []byte {
	return fieldRaw(name, 'S', append(binary.BigEndian.AppendUint32(nil, uint32(len(v))), v...))
}

func fieldLong(name string, v int64) []byte {
	return fieldRaw(name, 'l', binary.BigEndian.AppendUint64(nil, uint64(v)))
}
