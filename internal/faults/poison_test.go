package faults

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/transports"
)

// Payload values that pick the handler's behaviour in the poison test.
const (
	nAlwaysFails = -1
	nPanics      = -2
	nPermanent   = -3
)

// poisonCase is one poison event: how it is made and what its dead letter
// must say.
type poisonCase struct {
	name     string
	reason   string // a part of the dead letter's reason
	attempts int    // the dead letter's attempt count
	id       string // the event ID, once fired ("" for a broker entry without one)
}

// TestPoison sends a listener (Concurrency 1, MaxDeliveries 3, one
// in-process retry after 100ms, redelivery after 300ms) poison events, each
// followed by a good one: a payload that is not JSON, a payload of the
// wrong shape, a broker entry that is no event at all (Redis, RabbitMQ),
// an event whose handler always fails, one whose handler panics, and one
// whose handler returns a permanent error. Each poison event ends in the
// group's dead-letter destination with its reason and attempt count; every
// good event is handled; and no event is retried faster than the backoff
// allows (the gaps between the handler calls of one event are measured).
func TestPoison(t *testing.T) {
	for _, kind := range []string{"memory", "redis", "amqp"} {
		t.Run(kind, func(t *testing.T) {
			checkLeaks(t)
			poison(t, newTarget(t, kind))
		})
	}
}

func poison(t *testing.T, tg *target) {
	const (
		maxDeliveries = 3
		retryWait     = 100 * time.Millisecond
		redelivery    = 300 * time.Millisecond
	)
	var mu sync.Mutex
	calls := map[string][]call{}
	handled := map[string]bool{}
	handler := func(ctx context.Context, d bus.Delivery[tick]) error {
		mu.Lock()
		calls[d.ID] = append(calls[d.ID], call{attempt: d.Attempt, at: time.Now()})
		mu.Unlock()
		switch d.Payload.N {
		case nAlwaysFails:
			return errors.New("handler always fails")
		case nPanics:
			panic("handler panics")
		case nPermanent:
			return bus.Permanent(errors.New("not worth retrying"))
		}
		mu.Lock()
		handled[d.ID] = true
		mu.Unlock()
		return nil
	}
	lb := newBus(t, bus.Config{Service: tg.service, Process: "p1", Transport: tg.url})
	err := bus.Listen(lb, ticked, listenerName, handler,
		bus.WithConcurrency(1), bus.WithMaxDeliveries(maxDeliveries), bus.WithAckTimeout(30*time.Second),
		bus.WithRetry(bus.RetryPolicy{
			Tries: 2, InitialInterval: retryWait, Jitter: -1,
			RedeliveryDelay: func(int) time.Duration { return redelivery },
		}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := lb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pub := newBus(t, bus.Config{Service: tg.service, Transport: tg.url})

	var good []string
	fireGood := func() {
		id, err := bus.Fire(ctx, pub, ticked, tick{N: len(good)})
		if err != nil {
			t.Fatal(err)
		}
		good = append(good, id)
	}
	raw := func(payload string) string {
		id := uuid.NewString()
		msg := message.NewMessage(id, []byte(payload))
		msg.Metadata = message.Metadata{
			bus.MetaID: id, bus.MetaType: ticked.Name(), bus.MetaSource: "/" + tg.service,
			bus.MetaSpecVersion: "1.0", bus.MetaContentType: "application/json",
			bus.MetaTime: time.Now().UTC().Format(time.RFC3339Nano),
		}
		if err := pub.Transport().Publish(ticked.Name(), msg); err != nil {
			t.Fatal(err)
		}
		return id
	}
	fire := func(n int) string {
		id, err := bus.Fire(ctx, pub, ticked, tick{N: n})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	cases := []*poisonCase{
		{name: "not JSON", reason: "cannot decode event", attempts: 1},
		{name: "wrong shape", reason: "cannot decode event", attempts: 1},
		{name: "always fails", reason: "handler always fails", attempts: maxDeliveries},
		{name: "panics", reason: "handler panics", attempts: maxDeliveries},
		{name: "permanent error", reason: "not worth retrying", attempts: 1},
	}
	make := map[string]func() string{
		"not JSON":        func() string { return raw("{this is not JSON") },
		"wrong shape":     func() string { return raw(`{"n":"seven"}`) },
		"always fails":    func() string { return fire(nAlwaysFails) },
		"panics":          func() string { return fire(nPanics) },
		"permanent error": func() string { return fire(nPermanent) },
	}
	if tg.kind != "memory" {
		cases = append(cases, &poisonCase{name: "undecodable broker entry", reason: "poison", attempts: 1})
		make["undecodable broker entry"] = func() string { injectUndecodable(t, tg); return "" }
	}
	for _, c := range cases {
		c.id = make[c.name]()
		fireGood()
	}

	dls := lb.Transport().(transports.DeadLetterStore)
	var dead []transports.DeadLetter
	waitFor(t, 30*time.Second, "every poison event dead-lettered and every good event handled", func() bool {
		var err error
		dead, err = dls.DeadLetters(ctx, tg.group, 0)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, id := range good {
			if !handled[id] {
				return false
			}
		}
		return len(dead) >= len(cases)
	})
	// Nothing more arrives: a second dead letter of the same event would show here.
	time.Sleep(redelivery * 2)
	dead, err = dls.DeadLetters(ctx, tg.group, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != len(cases) {
		t.Errorf("%d dead letters, want %d", len(dead), len(cases))
	}
	for _, c := range cases {
		i := slices.IndexFunc(dead, func(d transports.DeadLetter) bool {
			if c.id == "" {
				return strings.Contains(d.Reason, "poison")
			}
			return d.Message != nil && d.Message.UUID == c.id
		})
		if i < 0 {
			t.Errorf("%s: no dead letter", c.name)
			continue
		}
		d := dead[i]
		t.Logf("%-24s dead letter: attempts %d, reason %q", c.name, d.Attempts, firstLine(d.Reason))
		if c.name == "panics" && d.Attempts == maxDeliveries+1 && strings.HasPrefix(d.Reason, fmt.Sprintf("exceeded %d deliveries", maxDeliveries)) {
			// bus.buildChain puts Recover outside DeadLetter: the panic of
			// the last allowed delivery is never dead-lettered; the next
			// delivery is, without running, and the panic is not named.
			t.Errorf("a handler that panics on every delivery is dead-lettered after %d deliveries with reason %q instead of after %d with the panic",
				d.Attempts, d.Reason, maxDeliveries)
			continue
		}
		if !strings.Contains(d.Reason, c.reason) {
			t.Errorf("%s: dead letter reason %q does not say %q", c.name, firstLine(d.Reason), c.reason)
		}
		if d.Attempts != c.attempts {
			t.Errorf("%s: dead letter attempts %d, want %d", c.name, d.Attempts, c.attempts)
		}
	}

	// Backoff: the handler calls of each event, in order. Within one
	// delivery the in-process retry waits retryWait; a new delivery comes
	// after the redelivery delay at the earliest.
	mu.Lock()
	defer mu.Unlock()
	for _, c := range cases {
		cs := calls[c.id]
		if c.id == "" || len(cs) < 2 {
			continue
		}
		perSecond := 0
		for i := range cs {
			n := 0
			for j := i; j < len(cs) && cs[j].at.Sub(cs[i].at) < time.Second; j++ {
				n++
			}
			perSecond = max(perSecond, n)
		}
		var gaps []string
		for i := 1; i < len(cs); i++ {
			gap := cs[i].at.Sub(cs[i-1].at)
			want := retryWait
			if cs[i].attempt != cs[i-1].attempt {
				want = redelivery
			}
			gaps = append(gaps, fmt.Sprintf("%d→%d %s", cs[i-1].attempt, cs[i].attempt, gap.Round(time.Millisecond)))
			// Timers never fire early; 5% covers clock rounding (RabbitMQ
			// expires messages in milliseconds).
			if gap < want*95/100 && want == retryWait && gap >= want*80/100*95/100 {
				// RetryPolicy.WithDefaults runs twice (bus, then
				// middleware.Retry): Jitter -1 becomes 0, then the default 0.2.
				t.Errorf("%s: in-process retry %s after the previous call with Jitter -1 (no jitter) and a %s wait: the default jitter of 20%% was applied",
					c.name, gap.Round(time.Millisecond), want)
			} else if gap < want*95/100 {
				t.Errorf("%s: handler called again %s after the previous call (attempt %d→%d); the backoff is %s",
					c.name, gap, cs[i-1].attempt, cs[i].attempt, want)
			}
		}
		t.Logf("%-24s %d handler calls, at most %d in one second; gaps (attempt→attempt) %s", c.name, len(cs), perSecond, strings.Join(gaps, ", "))
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// injectUndecodable puts an entry on the event's stream or queue that no
// decoder can turn into an event: a Redis entry without the UUID field, an
// AMQP message without an event ID header or message-id.
func injectUndecodable(t *testing.T, tg *target) {
	t.Helper()
	ctx := context.Background()
	switch tg.kind {
	case "redis":
		if err := tg.rdb.XAdd(ctx, &redis.XAddArgs{Stream: tg.stream, Values: []any{"payload", "no uuid, no metadata"}}).Err(); err != nil {
			t.Fatal(err)
		}
	case "amqp":
		conn, err := amqp091.Dial(amqpURL())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		if err := ch.Confirm(false); err != nil {
			t.Fatal(err)
		}
		conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, tg.exchange, ticked.Name(), true, false,
			amqp091.Publishing{Body: []byte("no event ID"), DeliveryMode: amqp091.Persistent})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := conf.WaitContext(ctx); !ok || err != nil {
			t.Fatalf("broker did not confirm the raw message: %v", err)
		}
	}
}
