// Package redisstream is the Redis Streams transport of Busline. Importing it
// registers the redis:// and rediss:// (TLS) URL schemes:
//
//	import _ "github.com/busline/busline/transports/redisstream"
//
//	b, err := bus.New(bus.Config{Service: "price-monitor", Transport: "redis://127.0.0.1:6379/0"})
//
// # Layout
//
// Each event is one stream, "{prefix}{event}" ("busline:competitor_prices.changed").
// Each listener is one consumer group "{service}-{listener}" on that stream;
// each process is one consumer of the group, named by the process name.
// Dead letters of a group go to the stream "{prefix}dead:{group}". Entries
// keep the layout of watermill-redisstream (fields _watermill_message_uuid,
// metadata as msgpack, payload), so a plain Watermill subscriber can read
// Busline streams and Busline can read streams written by plain Watermill.
//
// # Semantics
//
// A subscriber first reads its own pending entries (XPENDING, then XRANGE:
// no delivery counted), so a process restarted with the same name resumes
// at once, then reads new entries in batches (XREADGROUP COUNT n BLOCK t,
// n its free slots) and hands out at most Concurrency messages at a time.
// While entries are waiting it also reads ahead (Options.ReadAhead), in a
// script that leaves the entries read ahead uncounted until a handler gets
// one. The delivery count Redis keeps is the attempt number. A nacked
// entry stays pending, held by the subscriber until its delay ends (its
// claim kept alive), and its next hand-out is recorded (XCLAIM ...
// RETRYCOUNT n JUSTID). Entries idle longer than AckTimeout are taken from
// stopped consumers with XAUTOCLAIM; the subscriber resets the idle time of
// the entries it holds (XCLAIM ... JUSTID), so a slow handler keeps them.
// Acknowledgements are batched into one XACK per round trip, and concurrent
// Publish calls share pipelines, each returning once Redis replied to its XADD.
//
// Redis 6.2 or newer is required. See docs/transports/redis.md for every
// URL option and its default.
package redisstream
