package nats

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/busline/busline/transports"
)

// A waiting read is a pull request that waits on the server for a
// message. JetStream cannot take one back: it ends when it is served or
// when it expires. nats.go's Fetch unsubscribes the request's inbox when
// its context ends, but the server may send a message to the request
// before it sees that unsubscribe; the message then goes to an inbox
// nobody reads, waits out AckWait and counts one delivery more.
//
// The engine ends a waiting read it no longer needs (a delayed redelivery
// came due and wants the slot). So a waiting read's pull request is not
// tied to its caller: it runs on a goroutine of the subscription, bound
// to the read's wait and to the subscription's life, and a caller that
// stops waiting leaves it behind. The next read takes it over rather than
// sending another, so at most one waits for the subscription. What a
// left-behind request gets while no read waits on it is given back at
// once (giveBack): its attempt count stays what it was, since it reached
// no handler, and it is naked without delay, so the next read gets it.
// Only Close ends a pull request early, as a crash would: a message the
// server sends in that instant comes back after AckWait.
type waitingRead struct {
	done chan struct{} // closed once the pull request ended

	mu       sync.Mutex
	finished bool // msgs, batchErr and err are set
	left     bool // the caller stopped waiting: what comes is given back
	msgs     []jetstream.Msg
	batchErr error // the batch's own error (expiry, a status reply)
	err      error // the pull request could not be made
}

// waitFor pulls up to max messages from c, waiting up to wait for the
// first, on a goroutine of the subscription (see waitingRead). It returns
// what the pull request got, or ctx's error when ctx ended first. A pull
// request an earlier read left behind, still waiting, is taken over
// instead of a new one: at most one waits for this subscription, so that
// a message is not passed from one left-behind request to the next.
func (s *subscription) waitFor(ctx context.Context, c jetstream.Consumer, max int, wait time.Duration) (msgs []jetstream.Msg, batchErr, err error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, nil, transports.ErrClosed
	}
	r := s.lingering
	s.lingering = nil
	if r != nil && !r.takeOver() {
		r = nil // it ended: what it got is given back
	}
	if r == nil {
		r = &waitingRead{done: make(chan struct{})}
		s.reads.Add(1)
		go s.pull(r, c, max, wait)
	}
	s.mu.Unlock()
	select {
	case <-r.done:
	case <-ctx.Done():
		if r.leave() {
			s.mu.Lock()
			if s.lingering == nil && !s.closed {
				s.lingering = r
			}
			s.mu.Unlock()
			return nil, nil, ctx.Err()
		}
	}
	return r.msgs, r.batchErr, r.err
}

// pull runs r's pull request until it is served or expires (or the
// subscription closes), then hands what it got to r's caller, or gives
// it back when the caller left.
func (s *subscription) pull(r *waitingRead, c jetstream.Consumer, max int, wait time.Duration) {
	defer s.reads.Done()
	// A pull request expires on the server a little before its context,
	// so that none outlives the read.
	fctx, cancel := context.WithTimeout(s.life, wait)
	defer cancel()
	opts := []jetstream.FetchOpt{jetstream.FetchContext(fctx)}
	if wait >= 2*time.Second {
		// A request the server lost (it restarted) ends after two missed
		// heartbeats instead of at its expiry.
		opts = append(opts, jetstream.FetchHeartbeat(wait/5))
	}
	var got []jetstream.Msg
	var gotErr error
	batch, err := c.Fetch(max, opts...)
	if err == nil {
		got, gotErr = drain(batch)
	}
	r.mu.Lock()
	r.msgs, r.batchErr, r.err, r.finished = got, gotErr, err, true
	left := r.left
	r.mu.Unlock()
	close(r.done)
	if left {
		s.giveBack(got)
	}
}

// leave marks that r's caller stops waiting, unless the request already
// ended (its result is then the caller's); it reports whether it left.
func (r *waitingRead) leave() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		return false
	}
	r.left = true
	return true
}

// takeOver makes a new caller the one r's result goes to, unless the
// request already ended; it reports whether it took over.
func (r *waitingRead) takeOver() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		return false
	}
	r.left = false
	return true
}

// drain collects a pull request's messages until it ends, and its error.
func drain(batch jetstream.MessageBatch) ([]jetstream.Msg, error) {
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	return msgs, batch.Error()
}

// giveBack returns messages a pull request got after its caller stopped
// waiting: each reached no handler, so its attempt count is kept at what
// it was (a correction, as for a read the engine returns unhanded), and
// it is naked without delay for the next read. A replay meant for another
// group is acknowledged, as a read does.
func (s *subscription) giveBack(msgs []jetstream.Msg) {
	if len(msgs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.t.opts.Timeout)
	defer cancel()
	var skip []*delivery
	var errs []error
	for _, m := range msgs {
		d, dm := s.toMessage(ctx, m)
		switch {
		case d == nil:
			continue
		case dm == nil:
			skip = append(skip, d)
			continue
		}
		if err := s.setAttempts(ctx, d, dm.Attempts); err != nil {
			errs = append(errs, err)
		}
		if err := m.Nak(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			errs = append(errs, err)
		}
	}
	if len(skip) > 0 {
		if err := s.ack(ctx, skip); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.flush(ctx, errs); err != nil {
		s.t.log.Warn("nats: giving back what a read received after it ended failed; a message whose nak failed comes back after AckWait, one whose count was not stored comes back with one attempt more",
			"group", s.group, "stream", s.t.opts.StreamName(s.topic), "messages", len(msgs), "error", err)
	}
}
