package transporttest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/busline/busline/transports"
)

// WatermillAckTimeout is the AckTimeout of the subscribers RunWatermill
// makes. The suite closes subscribers that hold read but unacknowledged
// messages (TestMessageCtx, TestContinueAfterErrors) and expects another
// member of the group to get them within its 15 s wait: on brokers with a
// pending list that takes AckTimeout.
const WatermillAckTimeout = 2 * time.Second

// WatermillFeatures returns the Features of Watermill's universal Pub/Sub
// test suite that every Busline transport declares, for the subscribers
// RunWatermill makes (Concurrency 1): consumer groups, at-least-once (not
// exactly-once), order kept for a single member of a group, and no
// message context carried from publisher to subscriber. A constructor call
// joins the same consumer group as the other calls of the same test, as
// the processes of one service do, so a new subscriber does not receive
// what the group already consumed (NewSubscriberReceivesOldMessages false).
// Persistent is the caller's: events outlive the Transport that fired them.
func WatermillFeatures(persistent bool) tests.Features {
	return tests.Features{
		ConsumerGroups:                      true,
		ExactlyOnceDelivery:                 false,
		GuaranteedOrder:                     true,
		GuaranteedOrderWithSingleSubscriber: true,
		Persistent:                          persistent,
		NewSubscriberReceivesOldMessages:    false,
		ContextPreserved:                    false,
		// RestartServiceCommand stays empty: the suite restarts the broker
		// it is given by a command, which would restart the shared one;
		// Run's Reconnect and BrokenRead tests restart a broker of their
		// own instead.
	}
}

// RunWatermill runs Watermill's universal Pub/Sub test suite
// (github.com/ThreeDotsLabs/watermill/pubsub/tests) against a transport,
// with url giving the transport URL of an isolated namespace (called once
// for the whole run; its cleanup runs at the end). The suite's publisher is
// a Transport; its subscriber is the transport's NewSubscriber on a
// Transport of its own (the suite closes the publisher while it still
// uses the subscriber), which that subscriber's Close closes too. Each
// test gets a consumer group of its own; ConsumerGroupPubSubConstructor
// maps the suite's consumer group to SubscriberConfig.Group. Features are
// the caller's (start from WatermillFeatures). The suite runs its short
// variant (ForceShort), which keeps CI fast, unless the tests are built
// with -tags watermilllong.
func RunWatermill(t *testing.T, url func(t testing.TB) string, features tests.Features) {
	t.Helper()
	features.ForceShort = features.ForceShort || !watermillLong
	u := url(t)
	open := func(t *testing.T) transports.Transport {
		t.Helper()
		tr, err := transports.Open(context.Background(), u, transports.OpenOptions{Service: "watermill-suite"})
		if err != nil {
			t.Fatalf("open transport: %v", err)
		}
		// The suite leaves some publishers and subscribers open: closed
		// with the test, they stop before the caller's clean-up deletes
		// what the test created (a subscriber still reading would make
		// its group again).
		t.Cleanup(func() { _ = tr.Close() })
		return tr
	}
	newPubSub := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		t.Helper()
		pub := open(t)
		subT := open(t)
		sub, err := subT.NewSubscriber(transports.SubscriberConfig{
			Group:       group,
			Consumer:    "c-" + watermill.NewShortUUID(),
			AckTimeout:  WatermillAckTimeout,
			Concurrency: 1,
		})
		if err != nil {
			_ = pub.Close()
			_ = subT.Close()
			t.Fatalf("new subscriber: %v", err)
		}
		return pub, &watermillSub{Subscriber: sub, transport: subT}
	}
	tests.TestPubSub(t, features,
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			// Every constructor call of one test joins the same group.
			sum := sha256.Sum256([]byte(t.Name()))
			return newPubSub(t, "wm-"+hex.EncodeToString(sum[:6]))
		},
		newPubSub,
	)
}

// watermillSub is a subscriber that owns its Transport.
type watermillSub struct {
	message.Subscriber
	transport transports.Transport
}

// SubscribeInitialize creates the group on topic when the subscriber can.
func (s *watermillSub) SubscribeInitialize(topic string) error {
	if si, ok := s.Subscriber.(message.SubscribeInitializer); ok {
		return si.SubscribeInitialize(topic)
	}
	return nil
}

// Close closes the subscriber, then its transport. The suite closes some
// subscribers twice: the second Close returns nil.
func (s *watermillSub) Close() error {
	err := s.Subscriber.Close()
	if cerr := s.transport.Close(); cerr != nil && !errors.Is(cerr, transports.ErrClosed) {
		err = errors.Join(err, cerr)
	}
	return err
}
