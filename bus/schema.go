package bus

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/schema"
	"github.com/busline/busline/transports"
)

// ErrInvalidPayload matches the error of a payload that does not match its
// event's schema (Config.ValidatePayloads): Fire returns it, and a listener
// dead-letters such an event with the mismatch as the reason. The error is
// a *schema.ValidationError naming each mismatch by its JSON pointer.
var ErrInvalidPayload = schema.ErrInvalidPayload

// Schema returns the JSON Schema of the event's payload type T, derived
// from the Go type by the rules of schema.For (json tags; a field is
// optional when its tag says omitempty or omitzero or its type is a
// pointer), with its version hash. It is computed once per type.
func (e Event[T]) Schema() *schema.Schema { return schema.For(reflect.TypeFor[T]()) }

// Schema returns the JSON Schema of e's payload: e.Schema().
func Schema[T any](e Event[T]) *schema.Schema { return e.Schema() }

// schemaState is what a bus knows about the schemas of its events: the
// events it fires (Declare) and listens to (Listen), and, when
// Config.ValidatePayloads is on, the compiled validator of each payload
// type.
type schemaState struct {
	mu       sync.Mutex
	fires    map[string]reflect.Type
	listens  map[string]*listened
	compiled sync.Map // reflect.Type → *schema.Validator
}

type listened struct {
	typ       reflect.Type
	listeners []string
}

// Declare records that the bus fires e, so that its schema is published
// at Start beside the schemas of the events the bus listens to (Listen
// records those itself), and ExportSchemas writes it. Fire does not need
// it: an event that is fired but not declared works as before, but no
// other service or tool can know its schema from this service. Call it
// before Start; declaring an event twice is harmless, but declaring one
// event name with two payload types fails with ErrInvalidEvent (the
// schema published would be one of them only).
func Declare[T any](b *Bus, e Event[T]) error {
	if b == nil {
		return fmt.Errorf("%w: nil *Bus", ErrInvalidConfig)
	}
	if e.Name() == "" {
		return fmt.Errorf("%w: zero Event; define events with NewEvent", ErrInvalidEvent)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed.Load():
		return ErrClosed
	case b.started:
		return fmt.Errorf("%w: declare %s before Start", ErrStarted, e.Name())
	}
	s := &b.schemas
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fires == nil {
		s.fires = map[string]reflect.Type{}
	}
	t := reflect.TypeFor[T]()
	if had, ok := s.fires[e.Name()]; ok && had != t {
		return fmt.Errorf("%w: %s is declared with payload type %v already, not %v: one event name has one payload type", ErrInvalidEvent, e.Name(), had, t)
	}
	s.fires[e.Name()] = t
	return nil
}

// noteListened records that listener listens to event with payload type t.
func (s *schemaState) noteListened(event string, t reflect.Type, listener string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listens == nil {
		s.listens = map[string]*listened{}
	}
	l := s.listens[event]
	if l == nil {
		l = &listened{typ: t}
		s.listens[event] = l
	}
	l.listeners = append(l.listeners, listener)
}

// Schemas returns the schema records of every event the bus fires
// (Declare) and listens to (Listen), sorted by event and role: what Start
// publishes and ExportSchemas writes. When two listeners of the service
// listen to one event with different payload types, the first one's type
// describes the service.
func (b *Bus) Schemas() []schema.Record {
	s := &b.schemas
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []schema.Record
	for event, t := range s.fires {
		sc := schema.For(t)
		out = append(out, schema.Record{Event: event, Service: b.cfg.Service, Role: schema.RoleFires, Hash: sc.Hash, Schema: sc.JSON})
	}
	for event, l := range s.listens {
		sc := schema.For(l.typ)
		out = append(out, schema.Record{
			Event: event, Service: b.cfg.Service, Role: schema.RoleListens, Hash: sc.Hash, Schema: sc.JSON,
			Listeners: slices.Sorted(slices.Values(l.listeners)),
		})
	}
	schema.Sort(out)
	return out
}

// ExportSchemas writes the schema file (schema.File) of the events the bus
// fires and listens to, for `busline schema check` in CI before a deploy.
// Build the bus as the service does — its Listen and Declare calls — on
// memory:// in a test, and write the file:
//
//	func TestExportSchemas(t *testing.T) {
//		b := newServiceBus(t) // the service's own setup, on memory://
//		f, _ := os.Create("schemas.json")
//		defer f.Close()
//		if err := b.ExportSchemas(f); err != nil { t.Fatal(err) }
//	}
//
// The bus does not need to be started.
func (b *Bus) ExportSchemas(w io.Writer) error {
	return schema.WriteFile(w, schema.File{Service: b.cfg.Service, Schemas: b.Schemas()})
}

// publishSchemas writes the bus's schema records where the transport keeps
// records (transports.RecordStore), then logs a warning for each breaking
// difference between them and the schemas other services published for
// the same events. A record already there with the same content, written
// less than schemaRefresh ago, is not written again: on a transport whose
// records are an append-only log (RabbitMQ), every Start would otherwise
// add every schema to it. A transport without records, or a failure to
// write, is logged and does not stop Start: schemas describe the bus,
// they do not run it.
func (b *Bus) publishSchemas(ctx context.Context) {
	recs := b.Schemas()
	if len(recs) == 0 {
		return
	}
	rs, ok := b.transport.(transports.RecordStore)
	if !ok {
		b.log.Debug("the transport keeps no records: event schemas are not published")
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	all, readErr := schema.Published(ctx, rs) // a failed read writes every record
	now := time.Now().UTC()
	stale := staleSchemas(recs, all, now)
	if len(stale) > 0 {
		for i := range stale {
			stale[i].Process = b.process
			stale[i].PublishedAt = now
		}
		if err := schema.Publish(ctx, rs, stale...); err != nil {
			if b.closing.Err() != nil {
				return // Close cut the start short: not worth a warning
			}
			b.log.Warn("event schemas not published", slog.Any("error", err))
			return
		}
	}
	if readErr != nil && len(all) == 0 {
		b.log.Warn("published event schemas not read", slog.Any("error", readErr))
		return
	}
	all = replaceRecords(all, stale)
	mine := map[string]bool{}
	for _, r := range recs {
		mine[r.Event] = true
	}
	for _, f := range schema.Conflicts(all) {
		if !mine[f.Event] || (f.Firer != b.cfg.Service && f.Listener != b.cfg.Service) {
			continue
		}
		b.log.Warn("event schema disagrees with another service",
			slog.String("event", f.Event), slog.String("firer", f.Firer), slog.String("listener", f.Listener),
			slog.String("field", f.Pointer), slog.String("problem", f.Message))
	}
}

// schemaRefresh is how old a record with unchanged content gets before a
// Start writes it again (with its process and time).
const schemaRefresh = 24 * time.Hour

// staleSchemas returns the records of mine that published does not hold
// with the same content (schema, descriptions included, and listeners),
// or holds with a time more than schemaRefresh before now or after it.
func staleSchemas(mine, published []schema.Record, now time.Time) []schema.Record {
	have := make(map[string]schema.Record, len(published))
	for _, r := range published {
		have[r.Key()] = r
	}
	var out []schema.Record
	for _, r := range mine {
		p, ok := have[r.Key()]
		age := now.Sub(p.PublishedAt)
		if ok && sameJSON(p.Schema, r.Schema) && slices.Equal(p.Listeners, r.Listeners) && age >= 0 && age < schemaRefresh {
			continue
		}
		out = append(out, r)
	}
	return out
}

// replaceRecords returns all with each record of mine in place of the
// record of its key, sorted as schema.Published sorts.
func replaceRecords(all, mine []schema.Record) []schema.Record {
	if len(mine) == 0 {
		return all
	}
	replaced := make(map[string]bool, len(mine))
	for _, r := range mine {
		replaced[r.Key()] = true
	}
	out := slices.DeleteFunc(all, func(r schema.Record) bool { return replaced[r.Key()] })
	out = append(out, mine...)
	schema.Sort(out)
	return out
}

// sameJSON reports whether a and b are the same JSON text but for
// insignificant space.
func sameJSON(a, b []byte) bool {
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return false
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}

// validator returns the compiled validator of payload type t.
func (s *schemaState) validator(t reflect.Type) (*schema.Validator, error) {
	if v, ok := s.compiled.Load(t); ok {
		return v.(*schema.Validator), nil
	}
	v, err := schema.Compile(schema.For(t).JSON)
	if err != nil {
		return nil, fmt.Errorf("bus: schema of %v: %w", t, err)
	}
	s.compiled.Store(t, v)
	return v, nil
}

// validateFire checks an encoded payload of type t against its schema
// before Fire publishes it (Config.ValidatePayloads).
func (b *Bus) validateFire(topic string, t reflect.Type, data []byte) error {
	v, err := b.schemas.validator(t)
	if err != nil {
		return err
	}
	if err := v.Validate(data); err != nil {
		return fmt.Errorf("bus: fire %s: %w", topic, err)
	}
	return nil
}

// validating runs h only for payloads that match the schema of t; an
// event that does not is refused with a permanent error, so that the
// dead-letter middleware dead-letters it with the mismatch as the reason,
// like an event that does not decode.
func (b *Bus) validating(topic string, t reflect.Type, h message.HandlerFunc) (message.HandlerFunc, error) {
	v, err := b.schemas.validator(t)
	if err != nil {
		return nil, err
	}
	return func(msg *message.Message) ([]*message.Message, error) {
		if err := v.Validate(msg.Payload); err != nil {
			return nil, Permanent(fmt.Errorf("bus: %s: %w", topic, err))
		}
		return h(msg)
	}, nil
}
