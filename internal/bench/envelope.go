package bench

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/busline/busline/bus"
)

// envelopeSource is the ce-source the peers put on their messages with
// Config.Envelope, as a bus of service "bench" does.
const envelopeSource = "/bench"

// stamp is the fire time of one firing call of a Watermill or raw side,
// formatted once for all the messages the call fires: in Unix nanoseconds
// (sentAtKey) or, with Config.Envelope, as Busline writes ce-time.
type stamp struct {
	envelope bool
	text     string
}

func newStamp(envelope bool, now time.Time) stamp {
	if envelope {
		return stamp{envelope: true, text: now.UTC().Format(time.RFC3339Nano)}
	}
	return stamp{text: strconv.FormatInt(now.UnixNano(), 10)}
}

// putPeerMetadata gives set the metadata a Watermill or raw side puts on
// one message with UUID id: without Config.Envelope only the fire time
// (sentAtKey), with it the six entries of Busline's envelope (DESIGN §4),
// the fire time in ce-time. Watermill and the raw AMQP loop carry the UUID
// itself in a header of its own (_watermill_message_uuid) besides, as
// Busline's AMQP messages do.
func putPeerMetadata(set func(key, value string), st stamp, id string) {
	if !st.envelope {
		set(sentAtKey, st.text)
		return
	}
	set(bus.MetaID, id)
	set(bus.MetaSource, envelopeSource)
	set(bus.MetaType, event.Name())
	set(bus.MetaTime, st.text)
	set(bus.MetaSpecVersion, "1.0")
	set(bus.MetaContentType, "application/json")
}

// peerSentAt reads the fire time putPeerMetadata wrote, through get (a
// lookup in the message's metadata, headers or fields): sentAtKey when
// present, else ce-time, as Busline's handler reads it. The zero time when
// neither is readable.
func peerSentAt(get func(key string) string) time.Time {
	if s := get(sentAtKey); s != "" {
		ns, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}
		}
		return time.Unix(0, ns)
	}
	t, _ := time.Parse(time.RFC3339Nano, get(bus.MetaTime))
	return t
}

// rawID returns a random UUID (version 4 layout) for a message of a raw
// loop, from the runtime's ChaCha8 generator: as cheap as Busline's own
// event IDs, which a hand-written loop would match.
func rawID() string {
	const hex = "0123456789abcdef"
	var b [36]byte
	hi, lo := rand.Uint64(), rand.Uint64()
	hi = hi&^(0xf<<12) | 4<<12   // version 4
	lo = lo&^(0x3<<62) | 0x2<<62 // variant 10
	j := 0
	for i := range 16 {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		var c byte
		if i < 8 {
			c = byte(hi >> (8 * (7 - i)))
		} else {
			c = byte(lo >> (8 * (15 - i)))
		}
		b[j], b[j+1] = hex[c>>4], hex[c&0x0f]
		j += 2
	}
	return string(b[:])
}

// envelopeLines renders the envelope of a message with UUID id as
// "key=value" lines, the raw Redis loop's own encoding of it in one field
// (Busline's entries carry it in one msgpack field).
func envelopeLines(st stamp, id string) string {
	var b strings.Builder
	b.Grow(160)
	putPeerMetadata(func(k, v string) {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(v)
		b.WriteByte('\n')
	}, st, id)
	return b.String()
}

// lineValue returns the value of key in lines written by envelopeLines.
func lineValue(lines, key string) string {
	for line := range strings.Lines(lines) {
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			return strings.TrimSuffix(v, "\n")
		}
	}
	return ""
}
