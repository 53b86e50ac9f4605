package engine

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff spaces out retries after broker errors: 50ms doubling to 5s,
// with jitter, back to 50ms after a success.
type backoff struct{ n int }

const (
	backoffMin = 50 * time.Millisecond
	backoffMax = 5 * time.Second
)

func (b *backoff) reset() { b.n = 0 }

func (b *backoff) next() time.Duration {
	d := min(backoffMin<<min(b.n, 7), backoffMax)
	b.n++
	return d/2 + rand.N(d/2+1)
}

// sleep waits for the next delay; false when ctx ended first.
func (b *backoff) sleep(ctx context.Context) bool { return sleepCtx(ctx, b.next()) }

// sleepCtx waits for d; false when ctx ended first.
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
