package redisstream

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/transports"
)

// publisher sends the XADDs of concurrent Publish calls in shared
// pipelines: each of PublishPipes pipe goroutines takes every request
// waiting (up to PublishBatch), lets runnable publishers join
// (transports.Gather), and sends them in one round trip. A lone Publish goes out at once as a single
// XADD; under load, the requests that queue while a round trip is in flight
// form the next batch, with no timer adding latency. With several pipes,
// the messages of one Publish call go to one pipe together (groups), so
// that they reach the stream in the order of the call.
type publisher struct {
	client   redis.UniversalClient
	maxBatch int
	reqs     chan *pubReq
	groups   chan []*pubReq // with several pipes: the messages of one call, for one pipe

	mu       sync.RWMutex // held for reading by each Publish in flight
	closed   bool
	stop     chan struct{}
	pipes    sync.WaitGroup
	reqsPool sync.Pool
}

type pubReq struct {
	ctx    context.Context
	stream string
	maxLen int64
	values []any
	done   chan error
}

func newPublisher(client redis.UniversalClient, o Options) *publisher {
	p := &publisher{
		client:   client,
		maxBatch: o.PublishBatch,
		reqs:     make(chan *pubReq, o.PublishBatch*o.PublishPipes),
		stop:     make(chan struct{}),
	}
	p.reqsPool.New = func() any { return &pubReq{done: make(chan error, 1)} }
	if o.PublishPipes > 1 {
		p.groups = make(chan []*pubReq)
	}
	p.pipes.Add(o.PublishPipes)
	for range o.PublishPipes {
		go p.pipe()
	}
	return p
}

// publish appends msgs to stream and returns once Redis replied to each
// XADD. A message whose context ends before it was queued is not sent;
// one whose context ends while its XADD is under way is not waited for
// (the error wraps the context's: the entry may still be added).
func (p *publisher) publish(stream string, maxLen int64, msgs []*message.Message) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return transports.ErrClosed
	}
	reqs := make([]*pubReq, 0, len(msgs))
	defer func() { // those no pipe holds any more go back to the pool
		for _, r := range reqs {
			p.reqsPool.Put(r)
		}
	}()
	for _, msg := range msgs {
		values, err := encode(msg)
		if err != nil {
			return err
		}
		r := p.reqsPool.Get().(*pubReq)
		r.ctx, r.stream, r.maxLen, r.values = msg.Context(), stream, maxLen, values
		reqs = append(reqs, r)
	}
	n, qerr := p.queue(reqs)
	if qerr != nil {
		qerr = fmt.Errorf("redisstream: publish to %s: %w", stream, qerr)
	}
	var firstErr error
	for i, r := range reqs[:n] {
		replied, err := r.await()
		if !replied {
			err := fmt.Errorf("redisstream: publish message %s to %s: no reply from Redis in time (the entry may still be added): %w", msgs[i].UUID, stream, r.ctx.Err())
			// A pipe still holds reqs[i:n]: they are left to it, not reused.
			reqs = append(reqs[:i:i], reqs[n:]...)
			return errors.Join(firstErr, err)
		}
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("redisstream: publish message %s to %s: %w", msgs[i].UUID, stream, err)
		}
	}
	return errors.Join(firstErr, qerr)
}

// await waits for the reply to r, or for r's context to end first
// (replied false).
func (r *pubReq) await() (replied bool, err error) {
	select {
	case err = <-r.done:
		return true, err
	case <-r.ctx.Done():
		select {
		case err = <-r.done: // the reply came as well
			return true, err
		default:
			return false, nil
		}
	}
}

// queue hands reqs to the pipes: one by one to whichever pipe takes them,
// or, with several pipes and several requests, all to one pipe, which
// sends them in order. It returns how many it queued (reqs[:n] are the
// pipes' until each is answered); a request whose context ends before it
// was queued is not sent, nor are those after it, and queue returns the
// context's error.
func (p *publisher) queue(reqs []*pubReq) (int, error) {
	if p.groups != nil && len(reqs) > 1 {
		// The requests up to the first whose context has ended.
		n := 0
		for n < len(reqs) && reqs[n].ctx.Err() == nil {
			n++
		}
		if n > 0 {
			select {
			case p.groups <- reqs[:n]:
			case <-reqs[0].ctx.Done():
				return 0, reqs[0].ctx.Err()
			}
		}
		if n < len(reqs) {
			return n, reqs[n].ctx.Err()
		}
		return n, nil
	}
	for i, r := range reqs {
		if r.ctx.Err() != nil { // ended already: do not let select pick the send
			return i, r.ctx.Err()
		}
		select {
		case p.reqs <- r:
		case <-r.ctx.Done():
			return i, r.ctx.Err()
		}
	}
	return len(reqs), nil
}

// pipe sends the queued requests, batch by batch, until stop.
func (p *publisher) pipe() {
	defer p.pipes.Done()
	batch := make([]*pubReq, 0, p.maxBatch)
	cmds := make([]*redis.StringCmd, 0, p.maxBatch)
	last := 0 // size of the previous batch
	for {
		select {
		case <-p.stop: // first: requests left queued were given up by their callers
			return
		default:
		}
		select {
		case r := <-p.reqs:
			batch = append(batch[:0], r)
			batch = transports.Gather(p.reqs, batch, p.maxBatch, last > 1)
			last = len(batch)
			cmds, _ = p.send(batch, cmds) // each caller got its own error
		case g := <-p.groups:
			// One Publish call's messages, in order: pipelines of up to
			// maxBatch, one after the other; after a failed one, the rest
			// are not sent (they get its error).
			for len(g) > 0 {
				n := min(len(g), p.maxBatch)
				var err error
				cmds, err = p.send(g[:n], cmds)
				g = g[n:]
				if err != nil {
					for _, r := range g {
						r.done <- err
					}
					break
				}
			}
		case <-p.stop:
			return
		}
	}
}

// send sends the XADDs of batch in one round trip (a lone one as a single
// command), answers each request and returns the batch's first error;
// cmds is scratch space, returned for reuse.
func (p *publisher) send(batch []*pubReq, cmds []*redis.StringCmd) ([]*redis.StringCmd, error) {
	if len(batch) == 1 {
		r := batch[0]
		err := p.client.XAdd(r.ctx, xaddArgs(r)).Err()
		r.done <- err
		return cmds, err
	}
	// One pipeline for the batch. Its context is not any single
	// caller's: a caller whose context ends stops waiting on its own.
	pipe := p.client.Pipeline()
	cmds = cmds[:0]
	for _, r := range batch {
		cmds = append(cmds, pipe.XAdd(context.WithoutCancel(r.ctx), xaddArgs(r)))
	}
	_, _ = pipe.Exec(context.Background())
	var first error
	for i, r := range batch {
		err := cmds[i].Err()
		if err != nil && first == nil {
			first = err
		}
		r.done <- err
	}
	return cmds, first
}

func xaddArgs(r *pubReq) *redis.XAddArgs {
	a := &redis.XAddArgs{Stream: r.stream, Values: r.values}
	if r.maxLen > 0 {
		a.MaxLen, a.Approx = r.maxLen, true
	}
	return a
}

// close waits for the Publish calls in flight and stops the pipes.
func (p *publisher) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	close(p.stop)
	p.pipes.Wait()
}
