package bus

import (
	"math/rand/v2"
	"sync/atomic"
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
// event ID (a new UUIDv7 when id is empty), the metadata follows
// CloudEvents binary mode. The message is only published, never
// acknowledged, so it is built without the ack channels of
// message.NewMessage (Watermill's Ack and Nack accept that).
func newEnvelope(id, service, event, contentType string, payload []byte, now time.Time) *message.Message {
	// The ID, ce-source and ce-time are cut from one string.
	var buf [128]byte
	b := buf[:0]
	if id == "" {
		b = appendEventID(b, now)
	}
	idEnd := len(b)
	b = append(b, '/')
	b = append(b, service...)
	srcEnd := len(b)
	b = now.UTC().AppendFormat(b, time.RFC3339Nano)
	all := string(b)
	if id == "" {
		id = all[:idEnd]
	}
	md := make(message.Metadata, 8)
	md[MetaID] = id
	md[MetaSource] = all[idEnd:srcEnd]
	md[MetaType] = event
	md[MetaTime] = all[srcEnd:]
	md[MetaSpecVersion] = "1.0"
	md[MetaContentType] = contentType
	return &message.Message{UUID: id, Metadata: md, Payload: payload}
}

// lastV7 is the (milliseconds << 12 | sub-millisecond sequence) of the last
// event ID made in this process: IDs are strictly increasing within it.
var lastV7 atomic.Int64

// appendEventID appends a UUIDv7 (RFC 9562) for an event fired at now: 48
// bits of Unix milliseconds, 12 bits of sub-millisecond time that also
// serve as a counter so that IDs made in one process are strictly
// increasing (the method of google/uuid), and 62 random bits from the
// runtime's ChaCha8 generator, seeded by the operating system.
func appendEventID(b []byte, now time.Time) []byte {
	nano := now.UnixNano()
	milli := nano / 1e6
	seq := milli<<12 | (nano-milli*1e6)>>8 // the fraction is below 3907 < 1<<12
	for {
		last := lastV7.Load()
		if seq <= last {
			seq = last + 1
		}
		if lastV7.CompareAndSwap(last, seq) {
			break
		}
	}
	milli = seq >> 12
	var u [16]byte
	u[0] = byte(milli >> 40)
	u[1] = byte(milli >> 32)
	u[2] = byte(milli >> 24)
	u[3] = byte(milli >> 16)
	u[4] = byte(milli >> 8)
	u[5] = byte(milli)
	u[6] = 0x70 | byte(seq>>8)&0x0f
	u[7] = byte(seq)
	r := rand.Uint64()
	for i := 8; i < 16; i++ {
		u[i] = byte(r >> (8 * (15 - i)))
	}
	u[8] = u[8]&0x3f | 0x80 // variant 10
	return appendUUID(b, &u)
}

// appendUUID appends u as xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx.
func appendUUID(b []byte, u *[16]byte) []byte {
	const hex = "0123456789abcdef"
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hex[c>>4], hex[c&0x0f])
	}
	return b
}

// firedAt reads ce-time; the zero time when missing or malformed.
func firedAt(msg *message.Message) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, msg.Metadata.Get(MetaTime))
	return t
}
