package engine

import "time"

// DefaultNackDelay is how long a message nacked without
// DeliveryInfo.RetryAfter waits before it is delivered again: 1 s, every
// time. Only a consumer that sets no RetryAfter gets it — a plain
// Watermill handler under a Router, or code reading a transport directly;
// the bus and middleware.Retry always set RetryAfter from their retry
// policy (by default transports.DefaultRetryAfter, 1 s doubling up to 5
// minutes). Watermill's own drivers redeliver a nacked message at once,
// and its Pub/Sub test suite expects each of many consecutive nacks of one
// message to come back within 15 s; a fixed second keeps that promptness
// and is still never a hot loop (one delivery per second per failing
// event).
const DefaultNackDelay = time.Second
