package nats

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	natsgo "github.com/nats-io/nats.go"

	"github.com/busline/busline/transports"
)

// Headers of a JetStream message. The layout is watermill-nats's
// NATSMarshaler (the UUID in _watermill_message_uuid, every metadata key as
// a header of its own, the payload as the body), so a plain watermill-nats
// JetStream subscriber reads Busline events, and Busline reads what a
// plain watermill-nats publisher wrote.
const (
	// HeaderUUID carries the event ID, as watermill-nats writes it.
	HeaderUUID = "_watermill_message_uuid"
	// HeaderReplayGroup marks a message replayed from a dead-letter
	// destination: only that consumer group handles it; the others
	// acknowledge it without handing it out.
	HeaderReplayGroup = transports.MetaReplayGroup
	// Headers of a dead letter.
	HeaderDeadReason   = "busline-dead-reason"
	HeaderDeadAttempts = "busline-dead-attempts"
	HeaderDeadAt       = "busline-dead-at"
	HeaderDeadGroup    = "busline-dead-group"
	HeaderDeadTopic    = "busline-dead-topic"
)

// ErrDecode is wrapped by DeliveryInfo.Poison for a message that does not
// carry a Busline event (no event ID).
var ErrDecode = errors.New("nats: message is not a Busline event")

// encode returns the NATS message of msg on subject: the event ID in
// _watermill_message_uuid and in Nats-Msg-Id (JetStream's duplicate
// detection), the metadata as headers, the payload as the body.
func encode(subject string, msg *message.Message) (*natsgo.Msg, error) {
	h := make(natsgo.Header, len(msg.Metadata)+2)
	for k, v := range msg.Metadata {
		if reservedHeader(k) {
			return nil, fmt.Errorf("nats: encode message %s: metadata key %q is reserved", msg.UUID, k)
		}
		h[k] = []string{v}
	}
	h[HeaderUUID] = []string{msg.UUID}
	h[natsgo.MsgIdHdr] = []string{msg.UUID}
	return &natsgo.Msg{Subject: subject, Header: h, Data: msg.Payload}, nil
}

// reservedHeader reports headers that are not message metadata: the UUID,
// NATS's own (Nats-*), Busline's dead-letter and replay headers and those
// of the schedule stream (busline-sched-*).
func reservedHeader(k string) bool {
	return k == HeaderUUID || strings.HasPrefix(k, "Nats-") || strings.HasPrefix(k, "busline-dead-") ||
		strings.HasPrefix(k, "busline-sched-") || k == HeaderReplayGroup
}

// decode turns headers and body into a message. Without an event ID it
// returns a message with a fresh UUID holding the raw body, and an error
// wrapping ErrDecode (decodeStored gives a stored message a stable one).
func decode(h natsgo.Header, data []byte) (*message.Message, error) {
	id := first(h, HeaderUUID)
	if id == "" {
		id = first(h, natsgo.MsgIdHdr)
	}
	var err error
	if id == "" {
		id, err = watermill.NewUUID(), fmt.Errorf("%w: no %s or %s header", ErrDecode, HeaderUUID, natsgo.MsgIdHdr)
	}
	msg := message.NewMessage(id, data)
	msg.Metadata = make(message.Metadata, len(h))
	for k, vs := range h {
		if reservedHeader(k) || len(vs) == 0 {
			continue
		}
		msg.Metadata[k] = vs[0]
	}
	return msg, err
}

func first(h natsgo.Header, k string) string {
	if vs := h[k]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// decodeStored is decode for the message seq of stream: one without an
// event ID gets an ID made of its place in the stream, the same for every
// group that reads it, its dead letters and a tail, so that they can be
// matched up.
func decodeStored(h natsgo.Header, data []byte, stream string, seq uint64) (*message.Message, error) {
	msg, err := decode(h, data)
	if err != nil && first(h, HeaderUUID) == "" && first(h, natsgo.MsgIdHdr) == "" && stream != "" {
		msg.UUID = uuid.NewSHA1(storedIDSpace, []byte(stream+"/"+strconv.FormatUint(seq, 10))).String()
	}
	return msg, err
}

// storedIDSpace is the UUID name space of decodeStored's IDs.
var storedIDSpace = uuid.MustParse("6f1c1d2e-5b0a-4f43-9d7e-3b2f8a9c0b41")
