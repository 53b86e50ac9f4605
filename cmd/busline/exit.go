package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/internal/bench"
	"github.com/busline/busline/transports"
)

// Exit codes. Scripts may rely on them; docs/cli.md lists them.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitNotFound    = 3
	exitUnsupported = 4
	exitUnavailable = 5
	exitInterrupted = 130
)

// exitError carries the exit code of an error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	return &exitError{code: code, err: err}
}

func usagef(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

func notFoundf(format string, args ...any) error {
	return &exitError{code: exitNotFound, err: fmt.Errorf(format, args...)}
}

// classify returns the exit code of an error a command returned. Errors
// that carry no code come from cobra itself (unknown command or flag) and
// are usage errors.
func classify(err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	}
	return exitUsage
}

// failed gives an error of an operation its exit code.
func failed(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled):
		return withCode(exitInterrupted, err)
	case errors.Is(err, transports.ErrUnsupported):
		return withCode(exitUnsupported, err)
	case errors.Is(err, transports.ErrNotFound):
		return withCode(exitNotFound, err)
	case errors.Is(err, transports.ErrInvalidURL), errors.Is(err, transports.ErrUnknownScheme),
		errors.Is(err, bench.ErrInvalidConfig), errors.Is(err, bus.ErrInvalidEvent),
		errors.Is(err, bus.ErrPayloadTooLarge), errors.Is(err, bus.ErrDelayTooLong):
		return withCode(exitUsage, err)
	}
	return withCode(exitFailure, err)
}

// unavailable gives an error of opening a transport its exit code: a bad
// URL is a usage error, anything else means the broker is out of reach.
func unavailable(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, transports.ErrInvalidURL), errors.Is(err, transports.ErrUnknownScheme),
		errors.Is(err, transports.ErrInvalidConfig):
		// A database, vhost or file the URL names that does not exist.
		return withCode(exitUsage, err)
	case errors.Is(err, context.Canceled):
		return withCode(exitInterrupted, err)
	case errors.Is(err, transports.ErrAccessRefused):
		// The broker was reached and said no: not "out of reach".
		return withCode(exitFailure, err)
	}
	return withCode(exitUnavailable, err)
}
