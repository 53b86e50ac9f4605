// Package amqp is Busline's AMQP 0-9-1 (RabbitMQ) transport. Importing it
// registers the amqp:// and amqps:// URL schemes:
//
//	import _ "github.com/busline/busline/transports/amqp"
//
//	bus.Config{Service: "price-monitor", Transport: "amqp://guest:guest@127.0.0.1:5672/"}
//
// # Topology
//
// Every event is published to one durable topic exchange (option exchange,
// default "busline") with the event name as routing key. Every consumer
// group "{service}-{listener}" owns one durable queue named after the group
// (option queue_prefix prepends a prefix), bound to the exchange with its
// event name. Besides it, each group has:
//
//   - delay queues "{group}.retry.{step}" (one per step of the retry ladder,
//     declared on first use): a queue-wide message TTL of step, dead-lettering
//     through the default exchange back into the group queue. A failed event
//     is republished into the delay queue of the smallest step that is at
//     least the delay the bus asked for, then acknowledged: it comes back
//     after the delay, never in a hot loop, and without any broker plugin.
//   - a dead-letter queue "{group}.dead" holding events the group gave up
//     on, with the reason, attempts, time and topic as x-busline-dead-*
//     headers. Transport implements transports.DeadLetterStore on it.
//
// Queues are classic (version 2) by default; queue_type=quorum declares
// every queue as a quorum queue (replicated, what a clustered deployment
// should use).
//
// # Delivery
//
// Publish returns once the broker confirmed every message (publisher
// confirms on a pool of channels that concurrent publishers share). A
// subscriber consumes its group queue with a prefetch of Concurrency, hands
// out up to Concurrency deliveries without waiting for their acks, and acks
// a delivery once the bus acked the message, coalescing the acks of
// deliveries settled together into one basic.ack with multiple=true. The
// consumer tag is the process name. The attempt number is durable: the header x-busline-attempt, bumped
// on every republish, plus one for a delivery the broker returned after a
// consumer died (the Redelivered flag on classic queues, x-delivery-count on
// quorum queues). Header values of any AMQP type become strings in the
// message metadata.
//
// RabbitMQ returns the unacknowledged deliveries of a consumer to its queue
// as soon as the consumer's connection closes, so the process-name clause of
// Busline (a restarted process first gets its own pending events) holds at
// once for every process of the group, whatever its name; a consumer that
// stops acknowledging while its connection stays open keeps its deliveries
// until the broker's consumer_timeout.
//
// See docs/transports/amqp.md for every URL option and its default.
package amqp
