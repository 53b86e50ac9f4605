package bench

import (
	"strconv"
	"time"

	"github.com/busline/busline/bus"
)

// envelopeSource is the ce-source the peers put on their messages with
// Config.Envelope, as a bus of service "bench" does.
const envelopeSource = "/bench"

// putPeerMetadata gives set the metadata a Watermill or raw side puts on
// one message fired at now with UUID id: without Config.Envelope only the
// fire time (sentAtKey, Unix nanoseconds), with it the six entries of
// Busline's envelope (DESIGN §4), the fire time in ce-time as Busline
// writes it. Watermill and the raw AMQP loop carry the UUID itself in a
// header of its own (_watermill_message_uuid), as Busline's AMQP messages
// do.
func putPeerMetadata(set func(key, value string), envelope bool, id string, now time.Time) {
	if !envelope {
		set(sentAtKey, strconv.FormatInt(now.UnixNano(), 10))
		return
	}
	set(bus.MetaID, id)
	set(bus.MetaSource, envelopeSource)
	set(bus.MetaType, event.Name())
	set(bus.MetaTime, now.UTC().Format(time.RFC3339Nano))
	set(bus.MetaSpecVersion, "1.0")
	set(bus.MetaContentType, "application/json")
}

// peerSentAt reads the fire time putPeerMetadata wrote, through get (a
// lookup in the message's metadata, headers or fields): ce-time when
// present, as Busline's handler reads it, else sentAtKey. The zero time
// when neither is readable.
func peerSentAt(get func(key string) string) time.Time {
	if s := get(bus.MetaTime); s != "" {
		t, _ := time.Parse(time.RFC3339Nano, s)
		return t
	}
	ns, err := strconv.ParseInt(get(sentAtKey), 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(0, ns)
}
