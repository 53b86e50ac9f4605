package redisstream

import (
	"context"
	"time"
)

// sleepCtx waits for d; false when ctx ended first. (Retries with backoff
// of the subscriber side live in transports/engine.)
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
