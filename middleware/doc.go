// Package middleware holds the handler middleware of Busline's default chain,
// each a plain Watermill message.HandlerMiddleware:
//
//	tracing → recover → dead-letter → idempotency → retry → timeout → handler
//
// (tracing lives in package tracing, idempotency in package idempotency).
// The bus builds this chain for every listener; the pieces are exported so
// that a program can build its own chain around a Watermill router.
//
// Errors that are not worth retrying are marked with Permanent; the
// dead-letter middleware sends them to the dead-letter destination at once.
package middleware
