// Package engine is Busline's delivery engine: the message.Subscriber the
// bus sees, written once above the narrow per-broker interface of
// transports/driver.
//
// For each Subscribe it runs one reader, Concurrency slots, a settler, a
// scheduler on brokers with a pending list, and a keepalive loop on
// brokers with a pending list or an AckWait of their own:
//
//   - The reader reads what the slots can hand out: it takes a token per
//     free slot and asks the driver for that many entries. On a driver
//     that reads ahead (Capabilities.ReadAhead, driver.AheadReceiver) it
//     also holds ReadAhead tokens more, and asks for those entries
//     uncounted: they wait queued for the next slot that frees, and their
//     attempt is recorded when one is handed out. It reads no more ahead
//     than the slots hand out within Options.ReadAheadHorizon (20 ms) at
//     their recent rate, so slow handlers read nothing ahead. The reader
//     is a free slot that found nothing queued: it hands out the oldest
//     entry it read itself and queues the others. It reads
//     this member's own pending entries first, at start and again after
//     any broken read (items 4 and 12 of the semantics in
//     docs/transports.md), claims entries other members
//     left idle longer than AckTimeout (item 5) — reading own pending once
//     more with every claim pass, for entries a dying connection took —
//     then new entries. Pending,
//     claims and new reads run one at a time, so an entry is never read
//     twice at once; on a driver with ConcurrentReceive a free slot that
//     finds another slot reading new entries reads new entries for itself
//     alongside it (never alongside a read of the pending list).
//   - A slot hands one message out, waits for its Ack or Nack, cancels its
//     context (item 15) and passes the settlement to the settler. At most
//     Concurrency messages are out at any time. Subscribe runs the slots
//     as goroutines that send on a channel; SubscribeSlots returns them
//     for the caller's goroutines to run (Slot.Next, then Slot.Settle after
//     the Ack or Nack), with no hand-off between goroutines.
//   - The settler sends acknowledgements, nacks and attempt records in
//     batches, retrying with backoff, and flushes them at Close with a
//     fresh context, so settles made after Subscribe's context ended still
//     reach the broker.
//   - The keepalive loop calls the driver's KeepAlive for every entry the
//     subscription holds (queued, in a handler, waiting for its
//     redelivery or its ack) every KeepAliveInterval, and at least three
//     times within the driver's AckWait, so that a handler may run
//     longer than AckTimeout without its entry going to another member
//     (item 5).
//   - A nacked entry comes back after DeliveryInfo.RetryAfter, or
//     DefaultNackDelay (1 s): never a hot loop. With a pending list
//     the engine holds it (its claim kept alive) and hands it out again
//     itself; otherwise the driver's broker delays it.
//
// Attempts (item 6): a message handed out is attempt Attempts+1 of the
// driver's facts; the engine records it durably after the hand-out, so a
// crash may under-count, never over-count. Entries read and never handed
// out go back to the broker with their count unchanged.
//
// A delivery for a topic other than the one subscribed to (a queue shared
// by several events of one group) is never handed out (item 13): it goes
// back to the broker, uncounted, after a short delay.
package engine
