package redisstream

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/transports"
)

var _ transports.RecordStore = (*Transport)(nil)

// RecordsKey returns the key of the hash that holds the records of kind:
// "{prefix}records:{kind}".
func (t *Transport) RecordsKey(kind string) string { return t.opts.Prefix + "records:" + kind }

// claimRecord sets the field unless it exists and returns the value stored
// now, in one step.
var claimRecord = redis.NewScript(`
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
return redis.call('HGET', KEYS[1], ARGV[1])`)

// PutRecord implements transports.RecordStore (HSET).
func (t *Transport) PutRecord(ctx context.Context, kind, key string, value []byte) error {
	if err := transports.ValidateRecord(kind, key); err != nil {
		return err
	}
	if err := t.client.HSet(ctx, t.RecordsKey(kind), key, value).Err(); err != nil {
		return fmt.Errorf("redisstream: put record %s/%s: %w", kind, key, err)
	}
	return nil
}

// ClaimRecord implements transports.RecordStore (HSETNX and HGET in one script).
func (t *Transport) ClaimRecord(ctx context.Context, kind, key string, value []byte) ([]byte, error) {
	if err := transports.ValidateRecord(kind, key); err != nil {
		return nil, err
	}
	got, err := claimRecord.Run(ctx, t.client, []string{t.RecordsKey(kind)}, key, value).Text()
	if err != nil {
		return nil, fmt.Errorf("redisstream: claim record %s/%s: %w", kind, key, err)
	}
	return []byte(got), nil
}

// Records implements transports.RecordStore (HGETALL).
func (t *Transport) Records(ctx context.Context, kind string) (map[string][]byte, error) {
	if err := transports.ValidateRecord(kind, "x"); err != nil {
		return nil, err
	}
	all, err := t.client.HGetAll(ctx, t.RecordsKey(kind)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisstream: records %s: %w", kind, err)
	}
	out := make(map[string][]byte, len(all))
	for k, v := range all {
		out[k] = []byte(v)
	}
	return out, nil
}

// DeleteRecord implements transports.RecordStore (HDEL).
func (t *Transport) DeleteRecord(ctx context.Context, kind, key string) error {
	if err := transports.ValidateRecord(kind, key); err != nil {
		return err
	}
	if err := t.client.HDel(ctx, t.RecordsKey(kind), key).Err(); err != nil {
		return fmt.Errorf("redisstream: delete record %s/%s: %w", kind, key, err)
	}
	return nil
}
