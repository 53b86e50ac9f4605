package amqp

import (
	"errors"
	"testing"
	"time"

	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v2/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

func TestMarshalIsReadableByWatermill(t *testing.T) {
	msg := message.NewMessage("0190-id", []byte(`{"n":1}`))
	msg.Metadata.Set("ce-type", "a.b")
	msg.Metadata.Set("content-type", "application/json")
	pub, err := Marshaler{}.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	if pub.MessageId != "0190-id" || pub.ContentType != "application/json" || pub.DeliveryMode != amqp091.Persistent {
		t.Errorf("publishing properties = id %q type %q mode %d", pub.MessageId, pub.ContentType, pub.DeliveryMode)
	}
	got, err := wamqp.DefaultMarshaler{}.Unmarshal(amqp091.Delivery{Headers: pub.Headers, Body: pub.Body})
	if err != nil {
		t.Fatalf("watermill-amqp cannot read a Busline message: %v", err)
	}
	if got.UUID != msg.UUID || got.Metadata.Get("ce-type") != "a.b" {
		t.Errorf("watermill-amqp read %s %v", got.UUID, got.Metadata)
	}
}

func TestUnmarshalForeignHeaderTypes(t *testing.T) {
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	d := amqp091.Delivery{
		Headers: amqp091.Table{
			wamqp.DefaultMessageUUIDHeaderKey: "id-1",
			"s":                               "text",
			"i8":                              int8(-3),
			"i16":                             int16(300),
			"i32":                             int32(70000),
			"i64":                             int64(1) << 40,
			"u8":                              uint8(7),
			"f32":                             float32(1.5),
			"f64":                             2.25,
			"b":                               true,
			"bytes":                           []byte("raw"),
			"t":                               at,
			"dec":                             amqp091.Decimal{Scale: 2, Value: 1234},
			"nil":                             nil,
			"x-delivery-count":                int64(2),
			"x-death": []any{amqp091.Table{
				"count": int64(1), "queue": "q", "reason": "expired", "time": at,
				"routing-keys": []any{"a.b"},
			}},
			HeaderAttempt: "3",
		},
		Body: []byte("{}"),
	}
	msg, err := Marshaler{}.Unmarshal(d)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"s": "text", "i8": "-3", "i16": "300", "i32": "70000", "i64": "1099511627776", "u8": "7",
		"f32": "1.5", "f64": "2.25", "b": "true", "bytes": "raw", "t": "2024-05-01T12:00:00Z", "dec": "12.34", "nil": "",
		"x-delivery-count": "2",
		"x-death":          `[{"count":1,"queue":"q","reason":"expired","routing-keys":["a.b"],"time":"2024-05-01T12:00:00Z"}]`,
	}
	for k, v := range want {
		if got := msg.Metadata[k]; got != v {
			t.Errorf("metadata %s = %q, want %q", k, got, v)
		}
	}
	if _, ok := msg.Metadata[HeaderAttempt]; ok {
		t.Errorf("Busline's own header leaked into the metadata")
	}
	if msg.UUID != "id-1" {
		t.Errorf("UUID = %q", msg.UUID)
	}
	if n := attempt(d); n != 5 {
		t.Errorf("attempt = %d, want 3 (header) + 2 (x-delivery-count)", n)
	}
}

func TestUnmarshalWithoutID(t *testing.T) {
	msg, err := Marshaler{}.Unmarshal(amqp091.Delivery{Body: []byte("garbage")})
	if !errors.Is(err, ErrNoEventID) || msg == nil || string(msg.Payload) != "garbage" {
		t.Fatalf("Unmarshal of a message without ID = %v, %v", msg, err)
	}
	msg, err = Marshaler{}.Unmarshal(amqp091.Delivery{MessageId: "plain-amqp", Body: []byte("x")})
	if err != nil || msg.UUID != "plain-amqp" {
		t.Fatalf("message-id fallback = %v, %v", msg, err)
	}
}

func TestAttempt(t *testing.T) {
	for _, c := range []struct {
		d    amqp091.Delivery
		want int
	}{
		{amqp091.Delivery{}, 1},
		{amqp091.Delivery{Redelivered: true}, 2},
		{amqp091.Delivery{Headers: amqp091.Table{HeaderAttempt: "4"}}, 4},
		{amqp091.Delivery{Headers: amqp091.Table{HeaderAttempt: int32(4)}, Redelivered: true}, 5},
		{amqp091.Delivery{Headers: amqp091.Table{"x-delivery-count": int64(3)}, Redelivered: true}, 4},
		{amqp091.Delivery{Headers: amqp091.Table{HeaderAttempt: "junk"}}, 1},
	} {
		if got := attempt(c.d); got != c.want {
			t.Errorf("attempt(%v redelivered=%v) = %d, want %d", c.d.Headers, c.d.Redelivered, got, c.want)
		}
	}
}

func TestRepublishingDropsBrokerHeaders(t *testing.T) {
	d := amqp091.Delivery{
		Headers:   amqp091.Table{"x-death": []any{}, "x-first-death-queue": "q", "x-delivery-count": int64(1), "keep": "v", HeaderAttempt: "2"},
		MessageId: "id", Body: []byte("b"), DeliveryMode: amqp091.Persistent,
	}
	p := republishing(d, map[string]string{HeaderAttempt: "3", "keep": ""})
	if len(p.Headers) != 1 || p.Headers[HeaderAttempt] != "3" || p.MessageId != "id" || string(p.Body) != "b" {
		t.Errorf("republishing = %+v", p)
	}
}
