package bus_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/bus/bustest"
)

type bid struct {
	Item   string  `json:"item"`
	Amount float64 `json:"amount" jsonschema:"minimum=0"`
}

// bidAsText is what an out-of-date firer sends: the amount as a string.
type bidAsText struct {
	Item   string `json:"item"`
	Amount string `json:"amount"`
}

var (
	bidPlaced       = bus.NewEvent[bid]("auction", "bid_placed")
	bidPlacedAsText = bus.NewEvent[bidAsText]("auction", "bid_placed")
)

func TestEventSchema(t *testing.T) {
	s := bidPlaced.Schema()
	if s != bus.Schema(bidPlaced) || !strings.HasPrefix(s.Hash, "sha256:") {
		t.Fatalf("schema %+v", s)
	}
	if !strings.Contains(string(s.JSON), `"amount":{"type":"number","minimum":0}`) {
		t.Errorf("schema %s", s.JSON)
	}
	if bidPlacedAsText.Schema().Hash == s.Hash {
		t.Error("different payload types, one hash")
	}
}

func TestDeclareOneTypePerEvent(t *testing.T) {
	b := bustest.New(t, bus.Config{})
	if err := bus.Declare(b.Bus, bidPlaced); err != nil {
		t.Fatal(err)
	}
	if err := bus.Declare(b.Bus, bidPlaced); err != nil {
		t.Fatalf("declared twice with one type: %v", err)
	}
	err := bus.Declare(b.Bus, bidPlacedAsText)
	if !errors.Is(err, bus.ErrInvalidEvent) || !strings.Contains(err.Error(), "auction.bid_placed") {
		t.Fatalf("declared with a second payload type: %v, want ErrInvalidEvent naming the event", err)
	}
}

func TestValidatePayloadsOnFire(t *testing.T) {
	b := bustest.New(t, bus.Config{ValidatePayloads: true})
	ctx := context.Background()
	_, err := bus.Fire(ctx, b.Bus, bidPlaced, bid{Item: "lamp", Amount: -1})
	if !errors.Is(err, bus.ErrInvalidPayload) || !strings.Contains(err.Error(), "at /amount") {
		t.Errorf("Fire of an invalid payload: %v", err)
	}
	b.AssertFired(t, bidPlaced.Name(), 0)
	if _, err := bus.Fire(ctx, b.Bus, bidPlaced, bid{Item: "lamp", Amount: 3}); err != nil {
		t.Fatal(err)
	}
	b.AssertFired(t, bidPlaced.Name(), 1)

	// Off, the same payload goes out.
	off := bustest.New(t, bus.Config{})
	if _, err := bus.Fire(ctx, off.Bus, bidPlaced, bid{Item: "lamp", Amount: -1}); err != nil {
		t.Errorf("validation off: %v", err)
	}
}

func TestValidatePayloadsDeadLettersInvalidIncoming(t *testing.T) {
	b := bustest.New(t, bus.Config{Service: "auctions", ValidatePayloads: true})
	var ran atomic.Int32
	if err := bus.Listen(b.Bus, bidPlaced, "count", func(context.Context, bus.Delivery[bid]) error {
		ran.Add(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	b.Start(t)
	// Another service without validation, on the same broker, fires the old shape.
	legacy, err := bus.New(bus.Config{Service: "legacy", Transport: b.URL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = legacy.Close() })
	ctx := context.Background()
	if _, err := bus.Fire(ctx, legacy, bidPlacedAsText, bidAsText{Item: "lamp", Amount: "12"}); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.Fire(ctx, legacy, bidPlaced, bid{Item: "lamp", Amount: 12}); err != nil {
		t.Fatal(err)
	}
	b.MustWaitIdle(t)
	dl := b.DeadLetters("auctions-count")
	if len(dl) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dl))
	}
	if !strings.Contains(dl[0].Reason, "at /amount: got string, want number") {
		t.Errorf("reason %q should name the mismatch", dl[0].Reason)
	}
	if n := ran.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1 (the valid event only)", n)
	}
}

type gobCodec struct{ bus.JSONCodec }

func (gobCodec) ContentType() string { return "application/x-gob" }

func TestValidatePayloadsConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bus.yaml")
	if err := os.WriteFile(path, []byte("service: s\nvalidate_payloads: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := bus.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.ValidatePayloads {
		t.Error("validate_payloads: true not read")
	}
	cfg.Codec = gobCodec{}
	if _, err := bus.New(cfg); !errors.Is(err, bus.ErrInvalidConfig) {
		t.Errorf("ValidatePayloads with a non-JSON codec: %v", err)
	}
}

// Audit is embedded by pointer in lotClosed: its fields are left out when
// it is nil.
type Audit struct {
	By string `json:"by"`
}

// lotClosed has the shapes whose encoding/json output a schema once
// refused: a nil embedded pointer, null items, negative map keys.
type lotClosed struct {
	*Audit
	Lot    string         `json:"lot"`
	Bids   []*bid         `json:"bids"`
	ByStep map[int]string `json:"by_step"`
}

var lotClosedEvent = bus.NewEvent[lotClosed]("auction", "lot_closed")

func TestValidatePayloadsAcceptsWhatTheTypeEncodes(t *testing.T) {
	b := bustest.New(t, bus.Config{Service: "auctions", ValidatePayloads: true})
	var got atomic.Int32
	if err := bus.Listen(b.Bus, lotClosedEvent, "archive", func(context.Context, bus.Delivery[lotClosed]) error {
		got.Add(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	b.Start(t)
	p := lotClosed{Lot: "7", Bids: []*bid{{Item: "lamp", Amount: 3}, nil}, ByStep: map[int]string{-1: "reserve", 2: "final"}}
	if _, err := bus.Fire(context.Background(), b.Bus, lotClosedEvent, p); err != nil {
		t.Fatalf("Fire of a payload of the event's own type refused: %v", err)
	}
	b.MustWaitIdle(t)
	if dl := b.DeadLetters("auctions-archive"); len(dl) != 0 {
		t.Fatalf("dead-lettered: %s", dl[0].Reason)
	}
	if got.Load() != 1 {
		t.Errorf("handler ran %d times, want 1", got.Load())
	}
}
