package faults

import (
	"context"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) {
	// go-redis logs every failed dial: a broker restart test makes hundreds.
	redis.SetLogger(quietRedis{})
	if spec := os.Getenv(envChild); spec != "" {
		os.Exit(runChild(spec))
	}
	if spec := os.Getenv(envOutboxChild); spec != "" {
		os.Exit(runOutboxChild(spec))
	}
	os.Exit(m.Run())
}

type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}
