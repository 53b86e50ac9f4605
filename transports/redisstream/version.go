package redisstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/internal/redisurl"
)

// ErrRedisVersion is returned when opening a transport on a server older
// than Redis 6.2, which lacks XAUTOCLAIM and exclusive XPENDING ranges.
var ErrRedisVersion = errors.New("redisstream: Redis 6.2 or newer is required")

// checkVersion reads redis_version from INFO server and fails with
// ErrRedisVersion below 6.2. It also proves the server is reachable.
func checkVersion(ctx context.Context, client redis.UniversalClient) error {
	info, err := client.Info(ctx, "server").Result()
	if err != nil {
		return fmt.Errorf("redisstream: reach Redis: %w", redisurl.MarkRefused(err))
	}
	v := infoField(info, "redis_version")
	if v == "" {
		// Servers that speak the protocol without INFO fields (some
		// proxies): let the first stream command fail if unsupported.
		return nil
	}
	if !versionAtLeast(v, 6, 2) {
		return fmt.Errorf("%w; the server is Redis %s", ErrRedisVersion, v)
	}
	return nil
}

func infoField(info, name string) string {
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), name+":"); ok {
			return v
		}
	}
	return ""
}

func versionAtLeast(v string, major, minor int) bool {
	parts := strings.SplitN(v, ".", 3)
	maj, err := strconv.Atoi(parts[0])
	if err != nil {
		return true
	}
	mn := 0
	if len(parts) > 1 {
		mn, _ = strconv.Atoi(parts[1])
	}
	return maj > major || (maj == major && mn >= minor)
}
