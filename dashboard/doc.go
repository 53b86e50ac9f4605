// Package dashboard serves Busline's operations web page: the event streams
// with their retained length and rate, the consumer groups of each event
// with lag, pending, consumers and idle time (stale consumers highlighted),
// the dead letters of each group with replay and purge, a live tail of an
// event, and Prometheus gauges of the same figures on /metrics.
//
// It is built only on the transport capabilities the busline command uses
// (transports.Inspector, transports.DeadLetterStore, transports.Tailer), so
// it works on every transport that has them, and it mounts inside an
// application as an http.Handler, as asynqmon does for asynq:
//
//	mux.Handle("/busline/", http.StripPrefix("/busline", dashboard.Handler(dashboard.Options{
//		Transport: b.Transport(),
//		Token:     os.Getenv("BUSLINE_DASHBOARD_TOKEN"),
//	})))
//
// The page is plain HTML, CSS and JavaScript embedded in the binary: no
// build step, nothing loaded from the network. It refreshes itself through
// server-sent events and says so when the broker is unreachable.
//
// Security: with Options.Token set, every request needs the token (a
// bearer header, or a session cookie the login form sets). Actions
// (replay, purge) are POST requests that need a CSRF token bound to a
// cookie, and are refused from another origin; Options.ReadOnly refuses
// them all. The page never shows credentials: Options.Name is shown as
// given, so pass a redacted URL. CheckListen is the rule the busline
// command applies: a listen address that is not loopback needs a token.
package dashboard
