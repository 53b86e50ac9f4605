// Package driver is the narrow interface a broker implements so that the
// delivery engine (transports/engine) can read from it, in the way Go CDK
// splits pubsub/driver (per broker) from pubsub (portable, written once).
//
// A driver knows how to talk to its broker and nothing else: it reads
// batches for one member of one consumer group, acknowledges batches,
// returns batches for a later redelivery, reads the member's own pending
// entries, claims entries other members left idle, keeps claims alive and
// reports the broker's facts about each delivery (the attempts recorded
// before it, the topic it was fired as). It starts no goroutine beyond
// those of its connections and knows nothing of handlers, concurrency,
// backoff or shutdown: the engine does all of that, once, for every
// transport.
//
// # Who calls what
//
// The engine calls Receive, Pending and Claim from one goroutine, one at a
// time, so a driver never reads the same entry twice at once; a driver
// that reports Capabilities.ConcurrentReceive gets Receives side by side
// (never alongside Pending or Claim). Ack, Nack, Record and KeepAlive come
// from other goroutines, possibly concurrently with a read. Close is
// called once, after every other call returned.
//
// # Attempts
//
// An attempt is a delivery that reached the handler chain (docs/transports.md, semantics item 6).
// The driver reports Message.Attempts, the attempts the broker recorded
// before this delivery, and keeps them durable: reads of Pending and Claim
// never count, a new read counts at most the one attempt its Recorded flag
// says, Record sets the count once the engine handed a message out, and
// Nack stores the count the engine gives. A count may be lower than the
// truth (a crash before Record), never higher; the engine calls Record
// before the hand-out of a delivery made before (a Pending or Claim read,
// its own redelivery), so that a crash in the handler counts, and only the
// first attempt of an event can be lost so.
//
// docs/transports.md walks through writing a new driver.
package driver
