// Package transports defines what a broker driver gives the bus: a Watermill
// message.Publisher for firing, consumer-group subscribers for listening, and
// optional capability interfaces (dead letters, inspection).
//
// Drivers register a URL scheme on import, the way database/sql drivers do:
//
//	import _ "github.com/busline/busline/transports/redisstream"
//
// and the bus opens them with Open. The core never imports a driver;
// transports/all imports every driver shipped with Busline.
//
// # What a driver must keep
//
// The transports shipped with Busline build their subscribers with the
// delivery engine (transports/engine) over the narrow driver interface of
// transports/driver: the engine does hand-out, flow control, claims,
// settling, redelivery delays and attempt counting once for all of them,
// and a driver is broker talk. docs/transports.md lists the semantics every
// transport keeps and the steps to write a driver.
//
// Every transport passes the conformance suite in transports/transporttest.
// In short: a subscriber reads as member Consumer of consumer group Group;
// each group gets every event; members of a group share the work; a message
// is removed from the group only when acknowledged; a nacked message comes
// back after the delay the consumer asked for (DeliveryInfo.RetryAfter),
// with a durable attempt number (DeliveryInfo.Attempt) that counts only
// deliveries that reached a handler; a consumer that re-opens with the same
// name gets its own pending messages first; messages held longer than
// AckTimeout by a consumer that stopped are claimed by another member; an
// entry that cannot be decoded is delivered with DeliveryInfo.Poison set
// rather than ending the subscription.
package transports
