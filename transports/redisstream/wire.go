package redisstream

import (
	"errors"
	"fmt"

	wrs "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
)

// Fields of a stream entry: the layout of watermill-redisstream's
// DefaultMarshallerUnmarshaller, so that either side reads the other's entries.
const (
	fieldUUID     = wrs.UUIDHeaderKey // "_watermill_message_uuid"
	fieldMetadata = "metadata"        // msgpack map of string to string, empty when none
	fieldPayload  = "payload"
)

// metaReplayGroup marks an entry replayed from a dead-letter stream: only
// the named consumer group handles it; the other groups acknowledge it
// without handing it out.
const metaReplayGroup = "busline-replay-group"

// ErrDecode is wrapped by DeliveryInfo.Poison for an entry that does not
// decode into a message.
var ErrDecode = errors.New("redisstream: undecodable stream entry")

// wireCodec is watermill-redisstream's own marshaller: using it, rather than
// a copy, keeps the entries byte-for-byte what plain Watermill writes.
var wireCodec = wrs.DefaultMarshallerUnmarshaller{}

// encode returns the XADD field-value list of msg.
func encode(msg *message.Message) ([]any, error) {
	m, err := wireCodec.Marshal("", msg)
	if err != nil {
		return nil, fmt.Errorf("redisstream: encode message %s: %w", msg.UUID, err)
	}
	return []any{
		fieldUUID, m[fieldUUID],
		fieldMetadata, m[fieldMetadata],
		fieldPayload, m[fieldPayload],
	}, nil
}

// decode turns the fields of a stream entry into a message. On failure it
// still returns a message carrying what could be read (the UUID field or,
// failing that, the entry ID, and the raw payload) with an error wrapping
// ErrDecode.
func decode(entryID string, values map[string]any) (msg *message.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			msg, err = rawMessage(entryID, values), fmt.Errorf("%w %s: %v", ErrDecode, entryID, r)
		}
	}()
	for _, f := range []string{fieldUUID, fieldMetadata, fieldPayload} {
		if v, ok := values[f]; ok {
			if _, isString := v.(string); !isString {
				return rawMessage(entryID, values), fmt.Errorf("%w %s: field %s is %T, not a string", ErrDecode, entryID, f, v)
			}
		}
	}
	if s, _ := values[fieldUUID].(string); s == "" {
		return rawMessage(entryID, values), fmt.Errorf("%w %s: no %s field", ErrDecode, entryID, fieldUUID)
	}
	m, err := wireCodec.Unmarshal(values)
	if err != nil {
		return rawMessage(entryID, values), fmt.Errorf("%w %s: %w", ErrDecode, entryID, err)
	}
	return m, nil
}

// rawMessage is the best-effort message of an entry that does not decode.
func rawMessage(entryID string, values map[string]any) *message.Message {
	id, _ := values[fieldUUID].(string)
	if id == "" {
		id = entryID
	}
	payload, _ := values[fieldPayload].(string)
	return message.NewMessage(id, []byte(payload))
}
