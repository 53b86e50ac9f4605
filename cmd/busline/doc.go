// Command busline looks into and operates a Busline event bus: what the
// broker holds, the events going by, dead letters, firing an event by hand,
// and a benchmark against plain Watermill.
//
//	go install github.com/busline/busline/cmd/busline@latest
//
//	busline inspect                          streams, groups, consumers, pending, lag, dead letters
//	busline tail EVENT [--since WHEN]        follow events without joining any consumer group
//	busline dead list|show|replay|purge GROUP
//	busline fire EVENT --data JSON           fire an event, print its ID (--data validated against the published schemas)
//	busline schema list|show EVENT|export|check FILE   event schemas; check exits 1 on a breaking change
//	busline bench --events N --size BYTES --concurrency K
//	busline dashboard [--listen 127.0.0.1:8089] [--token T] [--read-only]   web page and /metrics
//
// Global flags: --transport URL (default: $BUSLINE_TRANSPORT, then the
// transport of the configuration file), --config FILE (default:
// $BUSLINE_CONFIG), --json (one JSON document on stdout instead of tables).
// Progress of long work goes to stderr. Passwords in URLs are never printed.
//
// Exit codes:
//
//	0    success
//	1    the operation failed (broker error, benchmark stalled, ...)
//	2    usage: bad flag or argument, invalid event name or JSON, no transport
//	     configured, bad URL, unknown scheme, purge without --yes
//	3    not found: no such dead letter
//	4    unsupported: the transport cannot do this (for example tail --since on AMQP)
//	5    unavailable: the broker could not be reached
//	130  interrupted (SIGINT/SIGTERM), except for tail, for which it is the normal end (0)
//
// See docs/cli.md for every command with its output.
package main
