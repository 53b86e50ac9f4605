// Package bench measures Busline against plain Watermill on the same broker
// in the same run; it is what `busline bench` runs.
//
// Run fires N events of a given size from K goroutines and consumes them
// through the bus with the default middleware chain (recover, tracing,
// dead-letter, memory idempotency, retry, timeout) and a listener of
// concurrency K; then it does the same with plain Watermill and its
// defaults on the same broker — GoChannel (persistent) for memory://,
// watermill-redisstream for redis://, watermill-amqp/v2
// NewDurableQueueConfig for amqp:// — through a Watermill router. For each
// side it reports the fire rate (events whose publish returned, per
// second), the end-to-end rate (events handled per second, from the first
// fire to the last handler call) and the fire → handler latency (p50, p99).
//
// Every key, queue and exchange a run creates carries a random name and is
// deleted before Run returns, on failure and cancellation too.
package bench
