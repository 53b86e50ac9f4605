package nats

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/busline/busline/transports"
)

// Records live in one JetStream key-value bucket, "{prefix}_records"
// (stream KV_{prefix}_records), under the key "{kind}.{base64url(key)}":
// KV keys cannot hold every character a record key may (':'), so the key
// is encoded. ClaimRecord is the bucket's atomic Create.

// recordKeyOf returns key when it is a valid record key, else a digest of
// it (names at their longest can make a composed key too long).
func recordKeyOf(key string) string {
	if transports.ValidateRecord("k", key) == nil {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "sha256/" + hex.EncodeToString(sum[:])
}

// recordKey returns the bucket key of (kind, key).
func recordKey(kind, key string) string {
	return kind + "." + base64.RawURLEncoding.EncodeToString([]byte(key))
}

// bucket opens (creating when asked) the record bucket; nil without error
// when it does not exist and create is false.
func (t *Transport) bucket(ctx context.Context, create bool) (jetstream.KeyValue, error) {
	t.kvMu.Lock()
	defer t.kvMu.Unlock()
	if t.kv != nil {
		return t.kv, nil
	}
	ctx, cancel := t.timeout(ctx)
	defer cancel()
	kv, err := t.js.KeyValue(ctx, t.opts.RecordBucket())
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		if !create {
			return nil, nil
		}
		kv, err = t.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      t.opts.RecordBucket(),
			Description: "busline records",
			History:     1,
			Storage:     t.opts.Storage,
			Replicas:    t.opts.Replicas,
		})
		if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			kv, err = t.js.KeyValue(ctx, t.opts.RecordBucket())
		}
	}
	if err != nil {
		return nil, fmt.Errorf("nats: record bucket %s: %w", t.opts.RecordBucket(), err)
	}
	t.kv = kv
	return kv, nil
}

// bucketGone reports whether err says the record bucket's stream is gone
// (deleted by an operator, or lost by a server restarted without its
// store): a write then finds no stream to answer it.
func bucketGone(err error) bool {
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, natsgo.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrBucketNotFound) ||
		errors.Is(err, natsgo.ErrStreamNotFound) // a watch goes through nats.go's older API
}

// bucketMissing reports whether the server says the record bucket does
// not exist: a read of a deleted bucket gets no answer and ends at its
// deadline, which alone does not tell a lost bucket from a slow server.
func (t *Transport) bucketMissing(ctx context.Context) bool {
	ctx, cancel := t.timeout(ctx)
	defer cancel()
	_, err := t.js.KeyValue(ctx, t.opts.RecordBucket())
	return errors.Is(err, jetstream.ErrBucketNotFound)
}

// forgetBucket makes the next bucket call ask the server again, unless
// another caller replaced kv meanwhile.
func (t *Transport) forgetBucket(kv jetstream.KeyValue) {
	t.kvMu.Lock()
	defer t.kvMu.Unlock()
	if t.kv == kv {
		t.kv = nil
	}
}

// onBucket runs op on the record bucket (made when create is set; op is
// not run, and nil returned, when there is none and create is not set).
// When op finds the bucket gone, the bucket is looked up (and made) again
// and op runs once more, so that a lost bucket costs one slow call (a read
// of a deleted bucket waits for its timeout), not a failure of every call
// for the life of the process.
func (t *Transport) onBucket(ctx context.Context, create bool, op func(ctx context.Context, kv jetstream.KeyValue) error) error {
	for try := 0; ; try++ {
		kv, err := t.bucket(ctx, create)
		if kv == nil || err != nil {
			return err
		}
		// Within the transport's timeout even under a longer deadline of
		// the caller's: a read of a deleted bucket waits for its end.
		octx, cancel := context.WithTimeout(ctx, t.opts.Timeout)
		err = op(octx, kv)
		cancel()
		if try == 0 && err != nil && ctx.Err() == nil &&
			(bucketGone(err) || errors.Is(err, context.DeadlineExceeded) && t.bucketMissing(ctx)) {
			t.forgetBucket(kv)
			continue
		}
		return err
	}
}

// PutRecord stores value under (kind, key), replacing any earlier value.
func (t *Transport) PutRecord(ctx context.Context, kind, key string, value []byte) error {
	if err := transports.ValidateRecord(kind, key); err != nil {
		return err
	}
	return t.onBucket(ctx, true, func(ctx context.Context, kv jetstream.KeyValue) error {
		if _, err := kv.Put(ctx, recordKey(kind, key), value); err != nil {
			return fmt.Errorf("nats: put record %s/%s: %w", kind, key, err)
		}
		return nil
	})
}

// ClaimRecord stores value under (kind, key) unless a value is there
// (KV Create, atomic on the server), and returns the value stored now.
func (t *Transport) ClaimRecord(ctx context.Context, kind, key string, value []byte) ([]byte, error) {
	if err := transports.ValidateRecord(kind, key); err != nil {
		return nil, err
	}
	k := recordKey(kind, key)
	var stored []byte
	err := t.onBucket(ctx, true, func(ctx context.Context, kv jetstream.KeyValue) error {
		for {
			_, err := kv.Create(ctx, k, value)
			if err == nil {
				stored = value
				return nil
			}
			if !errors.Is(err, jetstream.ErrKeyExists) {
				return fmt.Errorf("nats: claim record %s/%s: %w", kind, key, err)
			}
			e, err := kv.Get(ctx, k)
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				continue // deleted meanwhile: claim again
			}
			if err != nil {
				return fmt.Errorf("nats: claim record %s/%s: %w", kind, key, err)
			}
			stored = e.Value()
			return nil
		}
	})
	if err != nil {
		return nil, err
	}
	return stored, nil
}

// Records returns every record of kind, by key.
func (t *Transport) Records(ctx context.Context, kind string) (map[string][]byte, error) {
	if err := transports.ValidateRecord(kind, "x"); err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	err := t.onBucket(ctx, false, func(ctx context.Context, kv jetstream.KeyValue) error {
		clear(out)
		w, err := kv.Watch(ctx, kind+".*", jetstream.IgnoreDeletes())
		if err != nil {
			return fmt.Errorf("nats: records %s: %w", kind, err)
		}
		defer func() { _ = w.Stop() }()
		for {
			select {
			case e, ok := <-w.Updates():
				if !ok {
					return fmt.Errorf("nats: records %s: watcher stopped", kind)
				}
				if e == nil { // every current value was sent
					return nil
				}
				enc, _ := strings.CutPrefix(e.Key(), kind+".")
				key, err := base64.RawURLEncoding.DecodeString(enc)
				if err != nil {
					continue // not written by Busline
				}
				out[string(key)] = e.Value()
			case <-ctx.Done():
				return fmt.Errorf("nats: records %s: %w", kind, ctx.Err())
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteRecord removes the record (kind, key).
func (t *Transport) DeleteRecord(ctx context.Context, kind, key string) error {
	if err := transports.ValidateRecord(kind, key); err != nil {
		return err
	}
	return t.onBucket(ctx, false, func(ctx context.Context, kv jetstream.KeyValue) error {
		if err := kv.Delete(ctx, recordKey(kind, key)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("nats: delete record %s/%s: %w", kind, key, err)
		}
		return nil
	})
}
