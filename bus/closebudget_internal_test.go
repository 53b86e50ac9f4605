package bus

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/busline/busline/idempotency"
	"github.com/busline/busline/internal/syncbuf"
	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/memory"
)

// stalledTransport is a memory transport whose Close waits, as on a
// broker that does not answer, until its connections are dropped.
type stalledTransport struct {
	*memory.Transport
	once    sync.Once
	dropped chan struct{}
}

func (s *stalledTransport) DropConnections() bool {
	s.once.Do(func() { close(s.dropped) })
	return true
}

func (s *stalledTransport) Close() error {
	<-s.dropped
	return s.Transport.Close()
}

// droppingStore records that its connections were dropped.
type droppingStore struct {
	idempotency.Store
	once    sync.Once
	dropped chan struct{}
}

func (s *droppingStore) DropConnections() bool {
	s.once.Do(func() { close(s.dropped) })
	return true
}

// slowTransport is a memory transport whose Close waits for release and
// that cannot drop its connections.
type slowTransport struct {
	*memory.Transport
	release chan struct{}
}

func (s *slowTransport) Close() error {
	<-s.release
	return s.Transport.Close()
}

// A Close that outlasts the close budget drops the connections of the
// transport and of the store, and says so with ErrConnectionsDropped.
func TestCloseDropsConnectionsAfterItsBudget(t *testing.T) {
	tr := &stalledTransport{Transport: memory.New(memory.NewBroker(0)), dropped: make(chan struct{})}
	store := &droppingStore{Store: idempotency.NewMemoryStore(), dropped: make(chan struct{})}
	var _ transports.ConnectionDropper = tr
	b, err := NewContext(context.Background(), Config{Service: "s"}, WithTransport(tr), WithStore(store))
	if err != nil {
		t.Fatal(err)
	}
	b.closeBudget = 20 * time.Millisecond
	ev := NewEvent[int]("budget", "stalled")
	if err := Listen(b, ev, "l", func(context.Context, Delivery[int]) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); !errors.Is(err, ErrConnectionsDropped) {
		t.Fatalf("Close of a transport that waits until dropped = %v, want ErrConnectionsDropped", err)
	}
	select {
	case <-store.dropped:
	default:
		t.Error("the store's connections were not dropped")
	}
	if err := b.Close(); !errors.Is(err, ErrConnectionsDropped) {
		t.Errorf("second Close = %v, want the first one's error", err)
	}
}

// A Close within its budget drops nothing and returns nil.
func TestCloseWithinItsBudgetDropsNothing(t *testing.T) {
	tr := &stalledTransport{Transport: memory.New(memory.NewBroker(0)), dropped: make(chan struct{})}
	close(tr.dropped) // Close does not wait
	store := &droppingStore{Store: idempotency.NewMemoryStore(), dropped: make(chan struct{})}
	b, err := NewContext(context.Background(), Config{Service: "s"}, WithTransport(tr), WithStore(store))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	select {
	case <-store.dropped:
		t.Error("the store's connections were dropped on a Close within its budget")
	default:
	}
}

// callerOwnedTransport can drop connections but has none of its own (a
// client passed to its New): DropConnections reports false.
type callerOwnedTransport struct{ *slowTransport }

func (callerOwnedTransport) DropConnections() bool { return false }

// When neither the transport nor the store can drop a connection of its
// own, a Close past its budget says so in the log, waits for the
// transport, and does not claim that connections were dropped.
func TestCloseBudgetWithoutDropper(t *testing.T) {
	for name, wrap := range map[string]func(*slowTransport) transports.Transport{
		"no capability":          func(s *slowTransport) transports.Transport { return s },
		"a client passed to New": func(s *slowTransport) transports.Transport { return callerOwnedTransport{s} },
	} {
		t.Run(name, func(t *testing.T) {
			var logs syncbuf.Buffer
			tr := &slowTransport{Transport: memory.New(memory.NewBroker(0)), release: make(chan struct{})}
			b, err := NewContext(context.Background(), Config{Service: "s", Logger: slog.New(slog.NewTextHandler(&logs, nil))},
				WithTransport(wrap(tr)), WithStore(idempotency.NewMemoryStore()))
			if err != nil {
				t.Fatal(err)
			}
			b.closeBudget = 10 * time.Millisecond
			closed := make(chan error, 1)
			go func() { closed <- b.Close() }()
			deadline := time.After(10 * time.Second)
			for !strings.Contains(logs.String(), "neither the transport nor the dedup store has connections of its own to drop") {
				select {
				case err := <-closed:
					t.Fatalf("Close returned %v before the transport's Close did", err)
				case <-deadline:
					close(tr.release)
					t.Fatalf("no log line saying nothing could be dropped; logs:\n%s", logs.String())
				case <-time.After(5 * time.Millisecond):
				}
			}
			close(tr.release)
			if err := <-closed; err != nil {
				t.Fatalf("Close = %v, want nil (nothing was dropped)", err)
			}
		})
	}
}
