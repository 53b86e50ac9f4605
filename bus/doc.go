// Package bus is Busline's user-facing API: compose a Bus from a Config,
// define events with NewEvent, fire them with Fire, and listen with named
// listeners with Listen.
//
//	prices := bus.NewEvent[PriceChanged]("competitor_prices", "changed")
//	b, err := bus.New(bus.Config{Service: "price-monitor"})
//	bus.Listen(b, prices, "send-price-alerts", sendAlerts)
//	b.Start(ctx)
//	id, err := bus.Fire(ctx, b, prices, PriceChanged{...})
//
// Delivery is at-least-once. Every (service, listener) pair is a consumer
// group "{service}-{listener}" that receives every event; the processes of
// one group share its events. A handler's event is acknowledged only after
// the handler, inside the middleware chain
//
//	tracing → recover → dead-letter → idempotency → retry → timeout → handler
//
// returned nil or the event was dead-lettered. The transport is chosen by
// URL (memory://, redis://, amqp://, nats://); a driver registers its scheme when its
// package is imported (import transports/all for every scheme).
package bus
