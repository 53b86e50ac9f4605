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
//     watermill-redisstream for redis://, watermill-amqp/v2
//     NewDurableQueueConfig for amqp://;
//   - watermill-tuned: the fastest Watermill configuration we know for
//     the broker — a buffered GoChannel; K redisstream subscribers in one
//     consumer group behind K router handlers; watermill-amqp with a pool
//     of K confirm channels and K router handlers with prefetch 16;
//   - raw: a loop on the broker's own client written for throughput
//     (pipelined XADD, batched XREADGROUP, XACK pipelined with the next
//     read; amqp091 with publisher confirms waited for in batches, a
//     prefetch and multiple acks), the limit through that client.
//
// For each side it reports the fire rate (events whose publish returned,
// per second), the end-to-end rate (events handled per second, from the
// first fire to the last handler call), the fire → handler latency (p50,
// p99) and the CPU time of the process per event (getrusage around the
// side).
//
// Every key, queue and exchange a run creates carries a random name and is
// deleted before Run returns, on failure and cancellation too.
package bench
