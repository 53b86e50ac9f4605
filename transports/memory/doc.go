// Package memory is an in-process broker with the semantics of Redis
// Streams, the reference transport of Busline and the one tests run on. It
// registers the memory:// scheme on import.
//
// Unlike Watermill's GoChannel it has real consumer groups: an append-only
// log per event trimmed to a maximum length; per group a cursor and the
// entries delivered but not acknowledged (pending), each with its consumer,
// delivery count and idle time; reading new entries, reading a consumer's
// own pending entries, claiming idle entries and acknowledging them, each
// the plain counterpart of a Redis command (see Broker); a dead-letter
// list per group; and Since for new groups.
//
// The broker is the readable reference of that behaviour, nothing more:
// hand-out, concurrency, redelivery delays, attempt counting and shutdown
// come from the delivery engine (transports/engine), through the memory
// driver in driver.go, as for every other transport.
//
// memory:// opens a broker private to the bus that opens it. memory://NAME
// opens the broker called NAME, shared by every bus in the process that
// names it, so a test can run several processes of one service on one
// broker. Query options: maxlen=N (default 100000 entries per event).
package memory
