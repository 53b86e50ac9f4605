package bus

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/busline/busline/idempotency"
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

func (s *stalledTransport) DropConnections() { s.once.Do(func() { close(s.dropped) }) }

func (s *stalledTransport) Close() error {
	<-s.dropped
	return s.Transport.Close()
}

// droppingStore records that its connections were dropped.
type droppingStore struct {
	idempotency.Store
	dropped chan struct{}
}

func (s *droppingStore) DropConnections() { close(s.dropped) }

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
