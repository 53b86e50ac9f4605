package amqp

import (
	"errors"
	"fmt"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// maxShortString is the longest AMQP 0-9-1 short string: queue and
// exchange names, routing keys, the properties of a message (message-id,
// content-type, ...) and the names of its headers.
const maxShortString = 255

// ErrTooLong is returned, before anything is sent, for a name or a message
// that holds a short string longer than AMQP allows (maxShortString
// bytes): a routing key (event name), a message ID, a property or a
// header name. The client library would otherwise close the whole
// connection, failing every publish in flight on it.
var ErrTooLong = errors.New("amqp: longer than the 255 bytes an AMQP short string holds")

// checkShort reports s, named what, when it does not fit a short string.
func checkShort(what, s string) error {
	if len(s) > maxShortString {
		return fmt.Errorf("%w: %s %.40q... is %d bytes", ErrTooLong, what, s, len(s))
	}
	return nil
}

// checkPublishings reports the first short string of a publish with
// routing key key that AMQP cannot carry.
func checkPublishings(key string, pubs []amqp091.Publishing) error {
	if err := checkShort("routing key", key); err != nil {
		return err
	}
	for i := range pubs {
		p := &pubs[i]
		for _, f := range [...]struct{ what, s string }{
			{"message ID", p.MessageId}, {"content type", p.ContentType},
			{"content encoding", p.ContentEncoding}, {"correlation ID", p.CorrelationId},
			{"reply-to", p.ReplyTo}, {"expiration", p.Expiration}, {"type", p.Type},
			{"user ID", p.UserId}, {"app ID", p.AppId},
		} {
			if err := checkShort(f.what, f.s); err != nil {
				return err
			}
		}
		if err := checkTable(p.Headers); err != nil {
			return err
		}
	}
	return nil
}

// checkTable reports a header name, in t or a table nested in it, that
// does not fit a short string.
func checkTable(t amqp091.Table) error {
	for k, v := range t {
		if err := checkShort("header name", k); err != nil {
			return err
		}
		if nested, ok := v.(amqp091.Table); ok {
			if err := checkTable(nested); err != nil {
				return err
			}
		}
	}
	return nil
}
