// Package faults is the fault suite of Busline: tests that break things for
// real and count every event. They kill listener processes with SIGKILL
// mid-stream and restart them (with the same process name, and with
// another), restart the broker under load, feed listeners poison events,
// stop a process with SIGTERM while it works, and check with the brokers
// themselves that nothing was lost, nothing is stuck, and that duplicates
// stay within what the at-least-once contract allows.
//
// The listener processes are the test binary itself, re-executed with the
// environment variable BUSLINE_FAULTS_CHILD holding the child's
// configuration (see child_test.go). Each child appends one line per
// handled event to a file of its own; the parent reads the files and counts
// by event ID.
//
// This package holds the tools the tests share (a redis-server a test can
// kill and restart, a PostgreSQL server of a test's own, a TCP proxy that
// cuts every connection to RabbitMQ) and the soak benchmark. The outbox
// test also runs firer and relay processes (BUSLINE_FAULTS_OUTBOX_CHILD,
// see outbox_child_test.go). docs/reliability.md lists every guarantee, the test
// that proves it, how to run it and the figures measured.
//
// Run the suite with
//
//	go test ./internal/faults/
//
// It needs the local Redis, RabbitMQ and PostgreSQL that the other broker
// tests use, and redis-server on PATH; a test whose broker is unreachable
// is skipped, or fails when BUSLINE_REQUIRE_BROKERS=1. The long variants
// (more events, more kills, both kinds of broker restart) are behind the
// build tag faultslong:
//
//	go test -tags faultslong -timeout 40m ./internal/faults/
//
// The soak benchmark pushes one million events through the memory and the
// Redis transports and reports the peak RSS and the goroutine counts:
//
//	go test -run '^$' -bench Soak -benchtime 1x ./internal/faults/
package faults
