package redisstream

import (
	"context"
	"fmt"
	"math"

	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/internal/redisurl"
	"github.com/busline/busline/transports"
)

// createGroup runs XGROUP CREATE stream group start MKSTREAM; a group that
// already exists is left as it is.
func createGroup(ctx context.Context, client redis.UniversalClient, stream, group, start string) error {
	err := client.XGroupCreateMkStream(ctx, stream, group, start).Err()
	switch {
	case err == nil || isBusyGroup(err):
		return nil
	case isWrongType(err):
		// Not an outage: trying again later will not help.
		return fmt.Errorf("%w: redisstream: the key %s holds something other than a stream (another program uses it? set another prefix): %w", transports.ErrInvalidConfig, stream, err)
	}
	return fmt.Errorf("redisstream: create consumer group %s on %s: %w", group, stream, err)
}

func isWrongType(err error) bool { return redisurl.IsServerError(err, "WRONGTYPE") }

func isBusyGroup(err error) bool { return redisurl.IsServerError(err, "BUSYGROUP") }

func isNoGroup(err error) bool { return redisurl.IsServerError(err, "NOGROUP") }

// startID is the last-delivered ID a new group starts at: "$" for only new
// events, "0" for the whole retained stream, and for a time t the largest
// ID before t's millisecond, so that the first event delivered is the first
// fired at or after t.
func startID(since transports.Since) string {
	if since.IsBeginning() {
		return "0"
	}
	if t, ok := since.Time(); ok {
		ms := t.UnixMilli()
		if ms <= 0 {
			return "0"
		}
		return fmt.Sprintf("%d-%d", ms-1, uint64(math.MaxUint64))
	}
	return "$"
}
