package engine

import (
	"context"
	"sync"
	"time"

	"github.com/busline/busline/transports"
)

// msgContext is the context of a handed-out message: its parent's values
// and deadline and the message's DeliveryInfo, cancelled once the message
// is acked or nacked (or the subscriber closes). The parent is never
// cancelled (the engine derives it with context.WithoutCancel), so unlike
// context.WithCancel it registers nothing with it, and it makes its Done
// channel only when asked for one: handing out a message costs one
// allocation.
type msgContext struct {
	context.Context
	info transports.DeliveryInfo
	mu   sync.Mutex
	done chan struct{}
	err  error
}

// Value returns the message's DeliveryInfo for its key
// (transports.DeliveryInfoFrom), the parent's values otherwise.
func (c *msgContext) Value(key any) any {
	if transports.IsDeliveryInfoKey(key) {
		return &c.info
	}
	return c.Context.Value(key)
}

var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func (c *msgContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		if c.err != nil {
			return closedChan
		}
		c.done = make(chan struct{})
	}
	return c.done
}

func (c *msgContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *msgContext) Deadline() (time.Time, bool) { return c.Context.Deadline() }

// cancel ends the context; later calls do nothing.
func (c *msgContext) cancel() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = context.Canceled
	if c.done != nil {
		close(c.done)
	}
}
