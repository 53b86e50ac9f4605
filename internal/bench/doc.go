// Package bench measures Busline against plain Watermill on the same broker
// in the same run; it is what `busline bench` runs.
//
// Run fires N events of a given size from K goroutines and consumes them,
// on the same broker in the same run, one side after the other:
//
//   - busline: what a user gets by default for the transport — bus.New
//     with the URL, the default middleware chain, a listener of
//     concurrency K;
//   - watermill: plain Watermill with its defaults through a router
//     handler — GoChannel (persistent) for memory://,
//     watermill-redisstream (with a consumer group) for redis://,
//     watermill-amqp/v2 NewDurableQueueConfig for amqp://, watermill-nats
//     for nats://;
//   - watermill-tuned: the fastest Watermill configuration we know for
//     the broker — a buffered GoChannel; S redisstream subscribers in one
//     consumer group, each behind its own router handler; watermill-amqp
//     with a pool of K confirm channels, S router handlers with prefetch
//     16 and a version-2 queue (S is Config.TunedSubscribers,
//     DefaultTunedSubscribers by default);
//   - raw: a loop on the broker's own client written for throughput
//     (pipelined XADD, batched XREADGROUP, XACK pipelined with the next
//     read; amqp091 with publisher confirms waited for in batches, and a
//     consumer on its own connection with a prefetch and multiple acks),
//     the limit through that client.
//
// Every side encodes the payload of each event it fires and decodes it in
// its handler. With several rounds the sides take turns, each round
// starting one side later.
//
// For each side it reports the fire rate (events whose publish returned,
// per second), the end-to-end rate (events handled per second, from the
// first fire to the last handler call), the fire → handler latency (p50,
// p99), the CPU time of the process per event (getrusage around the
// side) and the mean time of one fire call.
//
// Every key, queue and exchange a run creates carries a random name and is
// deleted before Run returns, on failure and cancellation too.
package bench
