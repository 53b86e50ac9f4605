// Package nats is the NATS JetStream transport of Busline. Importing it
// registers the nats:// and tls:// (TLS) URL schemes:
//
//	import _ "github.com/busline/busline/transports/nats"
//
//	b, err := bus.New(bus.Config{Service: "price-monitor", Transport: "nats://127.0.0.1:4222"})
//
// # Layout
//
// Each event is one stream, "{prefix}_{event}" with the dots of the event
// name as '-' ("busline_competitor_prices-changed"), holding the subject
// "{prefix}.{event}". Each listener is one durable pull consumer
// "{service}-{listener}" on that stream, with explicit acks and AckWait =
// the listener's AckTimeout; the processes of a group pull from the same
// consumer. Dead letters of every group go to the stream "{prefix}_dead",
// one subject "{prefix}._dead.{group}" per group. Records (group owners,
// schemas) live in the key-value bucket "{prefix}_records". Events fired
// with a delay wait in the stream "{prefix}_schedule" until a mover (one
// transport at a time, under a lease) publishes them (schedule.go,
// mover.go). Messages carry
// the event ID in the _watermill_message_uuid and Nats-Msg-Id headers and
// the metadata as headers, the layout of watermill-nats's NATSMarshaler.
//
// # Semantics
//
// The subscriber is the delivery engine (transports/engine) over this
// package's driver: it pulls only as many messages as it has free handler
// slots, acks in batches, and returns a failed message with NakWithDelay,
// which the server redelivers when the delay ends; the engine keeps the
// messages a process holds alive within AckWait with the driver's
// in-progress acks. Fire
// returns once JetStream acknowledged the publish; a re-fire with the same
// event ID within the duplicate window is stored once.
//
// JetStream's unacknowledged messages belong to the group's consumer, not
// to a process. A process that closes naks what it holds (the group gets
// it at once); a process keeps the ack subjects of what it holds in the
// record bucket, and one restarted under the same name after a crash naks
// its predecessor's set, so those messages come back at once; the server
// redelivers anything else a dead process held after AckWait (the
// listener's AckTimeout, at most Options.MaxAckWait). See
// docs/transports/nats.md for the URL options and the whole mapping.
package nats
