package idempotency

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// extendCounter is a MemoryStore that reports each Extend of a key.
type extendCounter struct {
	*MemoryStore
	extended chan string
}

func (s *extendCounter) Extend(ctx context.Context, l Lease, d time.Duration) error {
	err := s.MemoryStore.Extend(ctx, l, d)
	if err == nil {
		s.extended <- l.Key
	}
	return err
}

// Handlers that run past their lease keep it, each extended on the
// middleware's one timer, and another consumer finds the key held
// meanwhile.
func TestKeeperExtendsRunningHandlers(t *testing.T) {
	s := &extendCounter{MemoryStore: NewMemoryStore(), extended: make(chan string, 1024)}
	const lease = 20 * time.Millisecond
	const handlers = 8
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	release := make(map[string]chan struct{})
	for i := range handlers {
		release[Key("g", fmt.Sprint("e", i))] = make(chan struct{})
	}
	h := Middleware(Options{Store: s, Group: "g", Lease: lease, HeldWait: -1})(func(msg *message.Message) ([]*message.Message, error) {
		select {
		case <-release[Key("g", msg.UUID)]:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	var wg sync.WaitGroup
	errs := make(chan error, handlers)
	for i := range handlers {
		wg.Go(func() {
			if _, err := h(message.NewMessage(fmt.Sprint("e", i), nil)); err != nil {
				errs <- err
			}
		})
	}
	// Each lease is extended three times: it outlived its own length.
	count := make(map[string]int)
	for done := 0; done < handlers; {
		select {
		case key := <-s.extended:
			count[key]++
			if count[key] != 3 {
				continue
			}
			st, _, err := s.Begin(ctx, key, lease)
			if err != nil || st != Held {
				t.Errorf("Begin %s while its handler runs = %v, %v; want Held", key, st, err)
			}
			close(release[key])
			done++
		case <-ctx.Done():
			t.Fatalf("extensions so far: %v", count)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for key := range release {
		if st, _, err := s.Begin(ctx, key, lease); err != nil || st != Done {
			t.Errorf("Begin %s after its handler = %v, %v; want Done", key, st, err)
		}
	}
}

// A lease taken before Begin (a claim a transport's read took) is first
// extended when half of it is left, not half a lease after Begin, which
// could be after it expired.
func TestKeeperExtendsAnEarlierLeaseInTime(t *testing.T) {
	const lease = time.Hour
	k := newKeeper(NewMemoryStore(), lease)
	now := time.Now()
	fresh := k.start(Lease{Key: "g:a", Expires: now.Add(lease)})
	earlier := k.start(Lease{Key: "g:b", Expires: now.Add(lease * 6 / 10)})
	defer k.stop(fresh)
	defer k.stop(earlier)
	if d := fresh.due.Sub(now); d < lease/2-time.Minute || d > lease/2+time.Minute {
		t.Errorf("a lease just taken is first extended after %v, want half the lease (%v)", d, lease/2)
	}
	if d := earlier.due.Sub(now); d < lease/10-time.Minute || d > lease/10+time.Minute {
		t.Errorf("a lease with 60%% left is first extended after %v, want when half is left (%v)", d, lease/10)
	}
}
