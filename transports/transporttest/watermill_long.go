//go:build watermilllong

package transporttest

// watermillLong runs the long variant of Watermill's suite (go test -tags watermilllong).
const watermillLong = true
