package bus

import (
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Metadata keys of the envelope: CloudEvents binary mode, "ce-" names.
const (
	MetaID          = "ce-id"
	MetaSource      = "ce-source"
	MetaType        = "ce-type"
	MetaTime        = "ce-time"
	MetaSpecVersion = "ce-specversion"
	MetaContentType = "content-type"
)

// newEnvelope builds the Watermill message of one event: the UUID is the
// event ID, the metadata follows CloudEvents binary mode.
func newEnvelope(id, service, event, contentType string, payload []byte, now time.Time) *message.Message {
	msg := message.NewMessage(id, payload)
	msg.Metadata = message.Metadata{
		MetaID:          id,
		MetaSource:      "/" + service,
		MetaType:        event,
		MetaTime:        now.UTC().Format(time.RFC3339Nano),
		MetaSpecVersion: "1.0",
		MetaContentType: contentType,
	}
	return msg
}

// firedAt reads ce-time; the zero time when missing or malformed.
func firedAt(msg *message.Message) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, msg.Metadata.Get(MetaTime))
	return t
}
