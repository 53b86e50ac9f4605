package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/memory"
)

// memoryBroker runs the Busline side on a private memory broker and plain
// Watermill on a persistent GoChannel.
type memoryBroker struct {
	maxLen int
}

func newMemoryBroker(u *url.URL, events int) (*memoryBroker, error) {
	maxLen := memory.DefaultMaxLen
	for k, vs := range u.Query() {
		if k != "maxlen" {
			return nil, fmt.Errorf("%w: memory: unknown option %q (known: maxlen)", transports.ErrInvalidURL, k)
		}
		n, err := strconv.Atoi(vs[0])
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%w: memory: maxlen=%q must be a positive integer", transports.ErrInvalidURL, vs[0])
		}
		maxLen = n
	}
	// A fast producer must not trim events the listener has not read yet.
	return &memoryBroker{maxLen: max(maxLen, events)}, nil
}

func (m *memoryBroker) scheme() string { return "memory" }

// buslineURL names no broker: the bus gets a private one.
func (m *memoryBroker) buslineURL() string { return "memory://?maxlen=" + strconv.Itoa(m.maxLen) }

func (m *memoryBroker) cleanBusline(context.Context) error { return nil }

func (m *memoryBroker) runWatermill(ctx context.Context, cfg Config) (Side, error) {
	pubSub := gochannel.NewGoChannel(gochannel.Config{Persistent: true}, watermill.NopLogger{})
	defer pubSub.Close()
	return runRouter(ctx, cfg, "watermill GoChannel (persistent)", event.Name(), pubSub, pubSub)
}

// sentAtKey is the metadata key in which the Watermill and raw sides
// carry the fire time, as Busline carries it in ce-time (without
// Config.Envelope).
const sentAtKey = "bench-sent-at"

// runWatermillTuned runs a persistent GoChannel whose subscription buffers
// cfg.Events messages, so that publishing never waits for the handler.
// GoChannel has no consumer groups: a second handler would get every
// message again instead of sharing the work.
func (m *memoryBroker) runWatermillTuned(ctx context.Context, cfg Config) (Side, error) {
	pubSub := gochannel.NewGoChannel(gochannel.Config{Persistent: true, OutputChannelBuffer: int64(cfg.Events)}, watermill.NopLogger{})
	defer pubSub.Close()
	return runRouter(ctx, cfg, "watermill GoChannel (tuned: buffered)", event.Name(), pubSub, pubSub)
}

// runRaw: a memory broker has no client of its own to loop on.
func (m *memoryBroker) runRaw(context.Context, Config) (Side, error) { return Side{}, errNoSide }

// runRouter consumes topic through a Watermill router handler on sub and
// fires with pub, the way a plain Watermill service does.
func runRouter(ctx context.Context, cfg Config, name, topic string, pub message.Publisher, sub message.Subscriber) (Side, error) {
	return runRouterN(ctx, cfg, name, topic, pub, []message.Subscriber{sub})
}

// runRouterN is runRouter with one router handler per subscriber, all on
// topic: where the subscribers share a consumer group (Redis) or a queue
// (AMQP), the handlers share the work.
func runRouterN(ctx context.Context, cfg Config, name, topic string, pub message.Publisher, subs []message.Subscriber) (Side, error) {
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
	if err != nil {
		return Side{}, fmt.Errorf("bench: %s: %w", name, err)
	}
	rec := newRecorder(cfg.Events)
	for i, sub := range subs {
		router.AddConsumerHandler("sink-"+strconv.Itoa(i), topic, sub, func(msg *message.Message) error {
			var p payload
			if err := json.Unmarshal(msg.Payload, &p); err != nil {
				return err
			}
			rec.record(peerSentAt(msg.Metadata.Get))
			return nil
		})
	}
	rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	runErr := make(chan error, 1)
	go func() { runErr <- router.Run(rctx) }()
	defer func() {
		stop()
		_ = router.Close()
		<-runErr
	}()
	select {
	case <-router.Running():
	case err := <-runErr:
		runErr <- err
		return Side{}, fmt.Errorf("bench: %s: router: %w", name, err)
	}
	p := newPayload(cfg.Size)
	if cfg.FireBatch > 1 {
		name = strings.TrimSuffix(name, ")") + fmt.Sprintf(", Publish of %d)", cfg.FireBatch)
	}
	return measureBatches(ctx, cfg, name, rec, cfg.FireBatch, func(_ context.Context, n int) error {
		msgs := make([]*message.Message, n)
		st := newStamp(cfg.Envelope, time.Now())
		for i := range msgs {
			body, err := json.Marshal(p) // every side encodes each event
			if err != nil {
				return err
			}
			id := watermill.NewUUID()
			msgs[i] = message.NewMessage(id, body)
			putPeerMetadata(msgs[i].Metadata.Set, st, id)
		}
		return pub.Publish(topic, msgs...)
	})
}
