package transports

// MessageLimiter is implemented by a transport whose broker refuses a
// message above a size that counts its headers too (NATS's max_payload,
// 1 MiB by default). The bus fires payloads of at most the limit less
// MessageHeadroom, so that every event it accepts can also be stored as a
// dead letter, with the reason and metadata that adds.
type MessageLimiter interface {
	// MaxMessageBytes returns the largest message the broker accepts,
	// headers included; 0 when it is not known.
	MaxMessageBytes() int
}

// MessageHeadroom is the room the bus keeps below a MessageLimiter's limit
// for a message's metadata: the event's own (ID, trace context, fired
// time) and a dead letter's (its reason, at most MaxReasonBytes, attempts
// and group).
const MessageHeadroom = 16 << 10

// MaxReasonBytes is the longest dead-letter reason the bus stores; a
// longer one (a panic's stack trace) is cut, and says so.
const MaxReasonBytes = 4 << 10
