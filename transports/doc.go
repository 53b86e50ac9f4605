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
// Every driver passes the conformance suite in transports/transporttest. In
// short: a subscriber reads as member Consumer of consumer group Group; each
// group gets every event; members of a group share the work; a message is
// removed from the group only when acknowledged; a nacked message comes back
// after the delay the consumer asked for (DeliveryInfo.RetryAfter), with a
// durable delivery count (DeliveryInfo.Attempt); a consumer that re-opens
// with the same name gets its own pending messages first; messages held
// longer than AckTimeout by a consumer that stopped are claimed by another
// member; an entry that cannot be decoded is delivered with
// DeliveryInfo.Poison set rather than ending the subscription.
package transports
