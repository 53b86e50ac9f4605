// Package memory is an in-process broker with the semantics of Redis
// Streams, the reference transport of Busline and the one tests run on. It
// registers the memory:// scheme on import.
//
// Unlike Watermill's GoChannel it has real consumer groups: an append-only
// log per event trimmed to a maximum length; per group a cursor and the
// entries delivered but not acknowledged (pending), each with its consumer,
// delivery count and idle time; ack; nack with a redelivery delay; claim of
// entries idle longer than AckTimeout by another member; a consumer that
// re-opens with the same name gets its own pending entries first; a
// dead-letter list per group; and Since for new groups.
//
// memory:// opens a broker private to the bus that opens it. memory://NAME
// opens the broker called NAME, shared by every bus in the process that
// names it, so a test can run several processes of one service on one
// broker. Query options: maxlen=N (default 100000 entries per event).
package memory
