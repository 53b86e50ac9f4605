package memory

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/engine"
)

func init() { transports.Register("memory", open) }

var (
	namedMu sync.Mutex
	named   = map[string]*Broker{}
)

// Named returns the broker called name, creating it (with maxLen) if no bus
// opened it yet. It is how memory://NAME is shared within a process.
func Named(name string, maxLen int) *Broker {
	namedMu.Lock()
	defer namedMu.Unlock()
	b := named[name]
	if b == nil {
		b = NewBroker(maxLen)
		named[name] = b
	}
	return b
}

// Forget drops the named broker from the process registry; buses that have
// it open keep using it. Tests call it in their cleanup.
func Forget(name string) {
	namedMu.Lock()
	defer namedMu.Unlock()
	delete(named, name)
}

func open(_ context.Context, u *url.URL, _ transports.OpenOptions) (transports.Transport, error) {
	maxLen := 0
	for k, vs := range u.Query() {
		switch k {
		case "maxlen":
			n, err := strconv.Atoi(vs[0])
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("%w: memory: maxlen=%q must be a positive integer", transports.ErrInvalidURL, vs[0])
			}
			maxLen = n
		default:
			return nil, fmt.Errorf("%w: memory: unknown option %q (known: maxlen)", transports.ErrInvalidURL, k)
		}
	}
	name := u.Host + u.Path
	if u.Opaque != "" {
		name = u.Opaque
	}
	if name == "" {
		t := New(NewBroker(maxLen))
		t.ownBroker = true
		return t, nil
	}
	return New(Named(name, maxLen)), nil
}

// Transport is a connection of one bus to a Broker.
type Transport struct {
	broker *Broker
	// ownBroker: the broker is private to this transport (memory://) and
	// is closed with it.
	ownBroker bool

	subs transports.Subscribers[*engine.Subscriber]
}

var (
	_ transports.Transport       = (*Transport)(nil)
	_ transports.DeadLetterStore = (*Transport)(nil)
	_ transports.ConsumerRemover = (*Transport)(nil)
)

// RemoveIdleConsumers implements transports.ConsumerRemover.
func (t *Transport) RemoveIdleConsumers(_ context.Context, topic, group string, idle time.Duration) ([]string, error) {
	return t.broker.RemoveIdleConsumers(topic, group, idle), nil
}

// New returns a transport on broker b.
func New(b *Broker) *Transport {
	return &Transport{broker: b}
}

// Broker returns the broker the transport uses.
func (t *Transport) Broker() *Broker { return t.broker }

// Publish appends msgs to the stream of topic. Once it returns, every
// existing group of the topic will get them.
func (t *Transport) Publish(topic string, msgs ...*message.Message) error {
	if t.subs.Closed() {
		return transports.ErrClosed
	}
	if topic == "" {
		return fmt.Errorf("memory: empty topic")
	}
	t.broker.append(topic, msgs)
	return nil
}

// NewSubscriber implements transports.Transport.
func (t *Transport) NewSubscriber(cfg transports.SubscriberConfig) (message.Subscriber, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var s *engine.Subscriber
	s, err := engine.New(memDriver{t}, cfg, engine.Options{OnClose: func() { t.subs.Remove(s) }})
	if err != nil {
		return nil, err
	}
	if err := t.subs.Add(s); err != nil {
		return nil, err
	}
	return s, nil
}

// Close closes every subscriber opened through t. The broker stays.
func (t *Transport) Close() error {
	first, err := t.subs.CloseAll()
	if first && t.ownBroker {
		t.broker.Close()
	}
	return err
}

// DeadLetter implements transports.DeadLetterer.
func (t *Transport) DeadLetter(_ context.Context, group string, msg *message.Message, reason string, attempts int) error {
	topic := ""
	if info := transports.DeliveryInfoFrom(msg.Context()); info != nil {
		topic = info.Topic
	}
	t.broker.deadLetter(group, topic, msg, reason, attempts)
	return nil
}

// DeadLetters implements transports.DeadLetterStore.
func (t *Transport) DeadLetters(_ context.Context, group string, limit int) ([]transports.DeadLetter, error) {
	return t.broker.DeadLetters(group, limit), nil
}

// ReplayDeadLetter implements transports.DeadLetterStore.
func (t *Transport) ReplayDeadLetter(_ context.Context, group, id string) error {
	// It fails only for a dead letter or a group that is not there
	// (ErrNotFound).
	return t.broker.replay(group, id)
}

// PurgeDeadLetters implements transports.DeadLetterStore.
func (t *Transport) PurgeDeadLetters(_ context.Context, group string) (int, error) {
	return t.broker.PurgeDeadLetters(group), nil
}

func toSince(s transports.Since) sinceSpec {
	at, _ := s.Time()
	return sinceSpec{beginning: s.IsBeginning(), at: at}
}
