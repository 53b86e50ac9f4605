package bench

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/ThreeDotsLabs/watermill"
	wjs "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/jetstream"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/busline/busline/transports"
	bnats "github.com/busline/busline/transports/nats"
)

// natsBroker runs both sides on one NATS server: Busline under the prefix
// "{run}", watermill-nats's JetStream pub/sub (pkg/jetstream, its
// defaults: an ephemeral pull consumer, synchronous publish) on the
// stream "{run}_watermill", which bench creates as watermill-nats's
// default stream configurator describes it (file storage).
type natsBroker struct {
	u       *url.URL
	run     string
	servers string
	conn    []natsgo.Option
}

func newNATSBroker(u *url.URL) (*natsBroker, error) {
	servers, conn, err := bnats.ConnectOptions(u)
	if err != nil {
		return nil, err
	}
	return &natsBroker{u: u, run: runName(), servers: servers, conn: conn}, nil
}

func (n *natsBroker) scheme() string { return n.u.Scheme }

// buslineURL puts every stream under a fresh prefix and turns the
// retention cap off (unless the URL asks for one), as the Watermill side
// has none.
func (n *natsBroker) buslineURL() string {
	u := *n.u
	q := u.Query()
	q.Set("prefix", n.run)
	if !q.Has("maxlen") {
		q.Set("maxlen", "0")
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func (n *natsBroker) cleanBusline(ctx context.Context) error {
	return n.deleteStreams(ctx, func(name string) bool {
		return strings.HasPrefix(name, n.run+"_") || name == "KV_"+n.run+"_records"
	})
}

// deleteStreams deletes the streams whose names match.
func (n *natsBroker) deleteStreams(ctx context.Context, match func(string) bool) error {
	nc, err := natsgo.Connect(n.servers, n.conn...)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", transports.Redact(n.u), err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	names := js.StreamNames(ctx)
	var del []string
	for name := range names.Name() {
		if match(name) {
			del = append(del, name)
		}
	}
	errs := []error{names.Err()}
	for _, name := range del {
		if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			errs = append(errs, fmt.Errorf("delete stream %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func (n *natsBroker) runWatermill(ctx context.Context, cfg Config) (side Side, err error) {
	topic := n.run + "_watermill"
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanTimeout)
		defer cancel()
		if cerr := n.deleteStreams(cctx, func(name string) bool { return name == topic }); cerr != nil {
			err = errors.Join(err, fmt.Errorf("bench: clean up the Watermill side: %w", cerr))
		}
	}()
	pc, err := natsgo.Connect(n.servers, n.conn...)
	if err != nil {
		return Side{}, fmt.Errorf("bench: connect: %w", err)
	}
	defer pc.Close()
	sc, err := natsgo.Connect(n.servers, n.conn...)
	if err != nil {
		return Side{}, fmt.Errorf("bench: connect: %w", err)
	}
	defer sc.Close()
	// watermill-nats's default consumer does not provision the stream:
	// make it as its default stream configurator says (name and subject
	// = topic, file storage).
	js, err := jetstream.New(pc)
	if err != nil {
		return Side{}, err
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: topic, Subjects: []string{topic}}); err != nil {
		return Side{}, fmt.Errorf("bench: create stream %s: %w", topic, err)
	}
	pub, err := wjs.NewPublisher(wjs.PublisherConfig{Conn: pc, Logger: watermill.NopLogger{}})
	if err != nil {
		return Side{}, fmt.Errorf("bench: watermill-nats publisher: %w", err)
	}
	defer pub.Close()
	sub, err := wjs.NewSubscriber(wjs.SubscriberConfig{Conn: sc, Logger: watermill.NopLogger{}})
	if err != nil {
		return Side{}, fmt.Errorf("bench: watermill-nats subscriber: %w", err)
	}
	defer sub.Close()
	return runRouter(ctx, cfg, "watermill-nats jetstream (defaults)", topic, pub, sub)
}

// runWatermillTuned: bench knows no tuned watermill-nats configuration yet;
// the NATS comparison is against watermill-nats's defaults.
func (n *natsBroker) runWatermillTuned(context.Context, Config) (Side, error) {
	return Side{}, errNoSide
}

// runRaw: no raw nats.go loop yet.
func (n *natsBroker) runRaw(context.Context, Config) (Side, error) { return Side{}, errNoSide }
