package redisstream

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// go-redis writes its own log lines ("redis: ... connection pool: failed
// to dial ...") through one package-level logger, to stderr by default,
// past the program's slog setup. Importing this package replaces that
// logger, once, in init, with one that writes each line as a slog warning
// (attribute component=go-redis) to the Logger of the oldest open Redis
// transport — the bus's logger — or to slog.Default() when none is open.
//
// The replacement happens at import, never later: a program that calls
// redis.SetLogger itself (after its imports run, as main does) keeps its
// own logger, and opening a transport never changes it behind its back.
func init() { redis.SetLogger(slogRedisLogger{}) }

// redisLogTargets are the loggers of the open transports, oldest first.
var redisLogTargets struct {
	mu   sync.Mutex
	list []*slog.Logger
}

func addRedisLogTarget(l *slog.Logger) {
	redisLogTargets.mu.Lock()
	defer redisLogTargets.mu.Unlock()
	redisLogTargets.list = append(redisLogTargets.list, l)
}

func removeRedisLogTarget(l *slog.Logger) {
	redisLogTargets.mu.Lock()
	defer redisLogTargets.mu.Unlock()
	if i := slices.Index(redisLogTargets.list, l); i >= 0 {
		redisLogTargets.list = slices.Delete(redisLogTargets.list, i, i+1)
	}
}

func redisLogTarget() *slog.Logger {
	redisLogTargets.mu.Lock()
	defer redisLogTargets.mu.Unlock()
	if len(redisLogTargets.list) > 0 {
		return redisLogTargets.list[0]
	}
	return slog.Default()
}

// slogRedisLogger is go-redis's internal.Logging on slog.
type slogRedisLogger struct{}

func (slogRedisLogger) Printf(ctx context.Context, format string, v ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	redisLogTarget().LogAttrs(ctx, slog.LevelWarn, msg, slog.String("component", "go-redis"))
}
