// Package transporttest is the conformance suite every Busline transport
// passes unchanged, in the spirit of Go CDK's drivertest. A driver's test
// calls Run with a Harness that says how to reach its broker and which
// capabilities it declares:
//
//	func TestConformance(t *testing.T) {
//		transporttest.Run(t, transporttest.Harness{Name: "memory", URL: ..., OwnPendingFirst: true, Replay: true, Retention: true})
//	}
//
// The suite drives the transport through the bus package, so it checks the
// semantics users see (DESIGN §3): fan-out across groups, work sharing,
// at-least-once, own pending first, reclaim after AckTimeout, bounded
// redelivery with durable attempts and backoff, poison events, graceful
// close, replay, retention and reconnect. With -short it uses fewer events.
package transporttest
