package amqp

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v2/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// Headers Busline sets on AMQP messages besides the message metadata. They
// are strings, so that watermill-amqp's DefaultMarshaler can read them.
const (
	// HeaderAttempt is the attempt number of the next delivery of a
	// republished message (absent: 1).
	HeaderAttempt = "x-busline-attempt"
	// HeaderTopic is the event name of a message in a delay or dead-letter queue.
	HeaderTopic = "x-busline-topic"
	// HeaderDeadID identifies a message within its dead-letter queue.
	HeaderDeadID = "x-busline-dead-id"
	// HeaderDeadReason is why the group gave up on the event.
	HeaderDeadReason = "x-busline-dead-reason"
	// HeaderDeadAttempts is the number of deliveries the event had.
	HeaderDeadAttempts = "x-busline-dead-attempts"
	// HeaderDeadAt is when it was dead-lettered (RFC 3339).
	HeaderDeadAt = "x-busline-dead-at"
	// HeaderDeadGroup is the consumer group that gave up.
	HeaderDeadGroup = "x-busline-dead-group"
)

// ErrNoEventID marks a delivery that carries neither the event ID header nor
// a message-id property: it cannot be turned into an event and is handed
// out as poison.
var ErrNoEventID = errors.New("amqp: message has no event ID (no " + wamqp.DefaultMessageUUIDHeaderKey + " header, no message-id property)")

// Marshaler converts between Watermill messages and AMQP messages. It
// implements watermill-amqp's Marshaler: it publishes exactly what
// watermill-amqp's DefaultMarshaler does (metadata as string headers, the
// UUID in the _watermill_message_uuid header, persistent delivery) plus the
// message-id, content-type and timestamp properties, so that plain
// watermill-amqp consumers read Busline events. Unmarshal, unlike
// DefaultMarshaler, accepts headers of every AMQP type (x-death tables,
// x-delivery-count numbers, ...) by converting them to strings.
type Marshaler struct{}

var _ wamqp.Marshaler = Marshaler{}

var publishMarshaler = wamqp.DefaultMarshaler{PostprocessPublishing: func(p amqp091.Publishing) amqp091.Publishing {
	if id, ok := p.Headers[wamqp.DefaultMessageUUIDHeaderKey].(string); ok {
		p.MessageId = id
	}
	if ct, ok := p.Headers["content-type"].(string); ok {
		p.ContentType = ct
	}
	p.Timestamp = time.Now().UTC()
	return p
}}

// Marshal returns the AMQP publishing of msg.
func (Marshaler) Marshal(msg *message.Message) (amqp091.Publishing, error) {
	return publishMarshaler.Marshal(msg)
}

// Unmarshal returns the message of an AMQP delivery. The event ID is the
// _watermill_message_uuid header, else the message-id property; without
// either it returns the message with a fresh UUID and an error wrapping
// ErrNoEventID. Busline's own x-busline-* headers are not copied into
// the metadata; every other header is, converted to a string.
func (Marshaler) Unmarshal(d amqp091.Delivery) (*message.Message, error) {
	var err error
	id := headerString(d.Headers[wamqp.DefaultMessageUUIDHeaderKey])
	if id == "" {
		id = d.MessageId
	}
	if id == "" {
		id = watermill.NewUUID()
		err = ErrNoEventID
	}
	msg := message.NewMessage(id, d.Body)
	msg.Metadata = make(message.Metadata, len(d.Headers))
	for k, v := range d.Headers {
		if k == wamqp.DefaultMessageUUIDHeaderKey || strings.HasPrefix(k, "x-busline-") {
			continue
		}
		msg.Metadata[k] = headerString(v)
	}
	if _, ok := msg.Metadata["content-type"]; !ok && d.ContentType != "" {
		msg.Metadata["content-type"] = d.ContentType
	}
	return msg, err
}

// headerString renders an AMQP field value as a string: strings as they
// are, numbers in decimal, times in RFC 3339, byte arrays as text, tables
// and arrays as JSON.
func headerString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []byte:
		return string(x)
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	case int8:
		return strconv.FormatInt(int64(x), 10)
	case int16:
		return strconv.FormatInt(int64(x), 10)
	case int32:
		return strconv.FormatInt(int64(x), 10)
	case int64:
		return strconv.FormatInt(x, 10)
	case uint8:
		return strconv.FormatUint(uint64(x), 10)
	case uint16:
		return strconv.FormatUint(uint64(x), 10)
	case uint32:
		return strconv.FormatUint(uint64(x), 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case amqp091.Decimal:
		r := new(big.Rat).SetFrac(big.NewInt(int64(x.Value)), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(x.Scale)), nil))
		return r.FloatString(int(x.Scale))
	case amqp091.Table, []any:
		b, err := json.Marshal(jsonable(x))
		if err != nil {
			return fmt.Sprint(x)
		}
		return string(b)
	default:
		return fmt.Sprint(x)
	}
}

// jsonable turns nested AMQP values into values encoding/json renders
// readably (byte arrays as text, decimals as numbers).
func jsonable(v any) any {
	switch x := v.(type) {
	case amqp091.Table:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = jsonable(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = jsonable(e)
		}
		return s
	case []byte, amqp091.Decimal:
		return headerString(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	default:
		return x
	}
}

// headerInt reads an integer header of any numeric or string type; ok is
// false when it is absent or not an integer.
func headerInt(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case int8:
		return int(x), true
	case int16:
		return int(x), true
	case int32:
		return int(x), true
	case int64:
		return int(x), true
	case uint8:
		return int(x), true
	case uint16:
		return int(x), true
	case uint32:
		return int(x), true
	case uint64:
		return int(x), true
	case float64:
		return int(x), true
	case string, []byte:
		n, err := strconv.Atoi(strings.TrimSpace(headerString(x)))
		return n, err == nil
	}
	return 0, false
}

// brokerHeader reports headers the broker adds when it dead-letters or
// redelivers a message; they are dropped when Busline republishes one.
func brokerHeader(k string) bool {
	return k == "x-death" || k == "x-delivery-count" ||
		strings.HasPrefix(k, "x-first-death-") || strings.HasPrefix(k, "x-last-death-")
}

// republishing returns a publishing carrying d's body, properties and
// headers, minus the broker's dead-lettering headers, with set applied
// (an empty value deletes the header).
func republishing(d amqp091.Delivery, set map[string]string) amqp091.Publishing {
	h := make(amqp091.Table, len(d.Headers)+len(set))
	for k, v := range d.Headers {
		if !brokerHeader(k) {
			h[k] = v
		}
	}
	for k, v := range set {
		if v == "" {
			delete(h, k)
		} else {
			h[k] = v
		}
	}
	mode := d.DeliveryMode
	if mode == 0 {
		mode = amqp091.Persistent
	}
	return amqp091.Publishing{
		Headers: h, ContentType: d.ContentType, ContentEncoding: d.ContentEncoding,
		DeliveryMode: mode, Priority: d.Priority, CorrelationId: d.CorrelationId,
		ReplyTo: d.ReplyTo, MessageId: d.MessageId, Timestamp: d.Timestamp,
		Type: d.Type, AppId: d.AppId, Body: d.Body,
	}
}
