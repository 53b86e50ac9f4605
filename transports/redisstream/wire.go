package redisstream

import (
	"errors"
	"fmt"

	wrs "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
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
const metaReplayGroup = transports.MetaReplayGroup

// ErrDecode is wrapped by DeliveryInfo.Poison for an entry that does not
// decode into a message.
var ErrDecode = errors.New("redisstream: undecodable stream entry")

// wireCodec is watermill-redisstream's own unmarshaller, used for metadata
// in msgpack forms other than the map of strings Watermill and Busline write.
var wireCodec = wrs.DefaultMarshallerUnmarshaller{}

// encode returns the XADD field-value list of msg, in the layout of
// watermill-redisstream's DefaultMarshallerUnmarshaller: the UUID, the
// metadata as a msgpack map (empty when there is none), the payload.
func encode(msg *message.Message) ([]any, error) {
	if _, reserved := msg.Metadata[fieldUUID]; reserved {
		return nil, fmt.Errorf("redisstream: encode message %s: metadata key %s is reserved for the message UUID", msg.UUID, fieldUUID)
	}
	var md []byte
	if len(msg.Metadata) > 0 {
		md = appendMetadata(make([]byte, 0, metadataSize(msg.Metadata)), msg.Metadata)
	}
	return []any{
		fieldUUID, msg.UUID,
		fieldMetadata, md,
		fieldPayload, []byte(msg.Payload),
	}, nil
}

// decode turns the fields of a stream entry into a message, as
// watermill-redisstream's unmarshaller does. On failure it still returns a
// message carrying what could be read (the UUID field or, failing that,
// the entry ID, and the raw payload) with an error wrapping ErrDecode.
func decode(entryID string, values map[string]any) (msg *message.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			msg, err = rawMessage(entryID, values), fmt.Errorf("%w %s: %v", ErrDecode, entryID, r)
		}
	}()
	uuid, ok1 := stringField(values, fieldUUID)
	md, ok2 := stringField(values, fieldMetadata)
	payload, ok3 := stringField(values, fieldPayload)
	if !ok1 || !ok2 || !ok3 {
		return rawMessage(entryID, values), fmt.Errorf("%w %s: a field of the entry is not a string", ErrDecode, entryID)
	}
	if uuid == "" {
		return rawMessage(entryID, values), fmt.Errorf("%w %s: no %s field", ErrDecode, entryID, fieldUUID)
	}
	msg = message.NewMessage(uuid, []byte(payload))
	if md == "" {
		return msg, nil
	}
	meta, err := parseMetadata(md)
	if err != nil {
		// Another msgpack form: let the library that wrote it decide.
		m, err := wireCodec.Unmarshal(values)
		if err != nil {
			return rawMessage(entryID, values), fmt.Errorf("%w %s: %w", ErrDecode, entryID, err)
		}
		return m, nil
	}
	msg.Metadata = meta
	return msg, nil
}

// stringField returns the string value of field f; false when it is
// present with another type. A missing or nil field is "".
func stringField(values map[string]any, f string) (string, bool) {
	v, ok := values[f]
	if !ok || v == nil {
		return "", true
	}
	s, ok := v.(string)
	return s, ok
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
