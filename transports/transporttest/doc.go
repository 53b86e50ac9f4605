// Package transporttest is the conformance suite every Busline transport
// passes unchanged, in the spirit of Go CDK's drivertest. It has two tiers,
// both run with a Harness that says how to reach the broker and which
// capabilities the transport declares:
//
//	var harness = transporttest.Harness{Name: "memory", URL: ..., OwnPendingFirst: true, Replay: true, Retention: true}
//
//	func TestConformance(t *testing.T)       { transporttest.Run(t, harness) }
//	func TestDriverConformance(t *testing.T) { transporttest.RunDriver(t, harness) }
//
// The driver tier (RunDriver) calls the transport's driver directly, with
// no engine and no middleware: every call of transports/driver, the
// attempt facts, ErrClosed, and the capability interfaces (inspector,
// tailer, dead-letter list, replay and purge).
//
// The bus tier (Run) drives the transport through the bus package, so it
// checks the semantics users see (the numbered list in docs/transports.md):
// fan-out across groups, work sharing, at-least-once, own pending first,
// reclaim after AckTimeout, bounded redelivery with durable attempts and
// backoff, poison events, graceful close, replay, retention, reconnect, a
// read broken by a cut connection, a restart after AckTimeout, and a crash
// loop of ten kill -9 while handlers run. The process and
// connection faults need a broker on the network; they are skipped for the
// in-process memory broker. With -short it uses fewer events.
package transporttest
