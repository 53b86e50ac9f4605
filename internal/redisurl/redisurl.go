// Package redisurl is the one parser of redis:// and rediss:// URLs into
// go-redis clients, shared by the Redis transport (transports/redisstream)
// and the Redis idempotency store (idempotency/redisstore), so that both
// accept the same URLs: a single server, a Cluster (cluster=true, or more
// than one addr=), or Sentinel (master_name=, with addr= for more
// sentinels, sentinel_username= and sentinel_password= for the
// sentinels' own credentials). Callers take their own query
// options out of the URL first.
package redisurl

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/transports"
)

// Kind says which go-redis client a URL asks for.
type Kind int

const (
	// Standalone is one server (redis.NewClient).
	Standalone Kind = iota
	// Cluster is Redis Cluster (redis.NewClusterClient).
	Cluster
	// Failover is Redis Sentinel (redis.NewFailoverClient).
	Failover
)

// Config is a parsed URL: the client kind and the go-redis options of
// that kind.
type Config struct {
	Kind     Kind
	Single   *redis.Options
	Cluster  *redis.ClusterOptions
	Failover *redis.FailoverOptions
}

// Parse parses u, whose own options the caller has removed, into go-redis
// options. cluster=true, or more than one addr= without master_name=, asks
// for a Cluster client; master_name= for a Sentinel client. Errors wrap
// transports.ErrInvalidURL and never repeat a password.
func Parse(u *url.URL) (Config, error) {
	q := u.Query()
	isCluster := false
	if vs, ok := q["cluster"]; ok && len(vs) > 0 {
		b, err := strconv.ParseBool(vs[len(vs)-1])
		if err != nil {
			return Config{}, fmt.Errorf("%w: redis option cluster=%q: %w", transports.ErrInvalidURL, vs[len(vs)-1], err)
		}
		isCluster = b
	}
	q.Del("cluster")
	_, isFailover := q["master_name"]
	// go-redis reads no Sentinel credentials from a URL: Busline does.
	sentinelUser, sentinelPass := q.Get("sentinel_username"), q.Get("sentinel_password")
	q.Del("sentinel_username")
	q.Del("sentinel_password")
	if !isFailover && (sentinelUser != "" || sentinelPass != "") {
		return Config{}, fmt.Errorf("%w: sentinel_username and sentinel_password need master_name", transports.ErrInvalidURL)
	}
	if !isFailover && len(q["addr"]) > 0 {
		isCluster = true
	}
	rest := *u
	rest.RawQuery = q.Encode()
	raw := rest.String()
	var c Config
	var err error
	switch {
	case isFailover:
		c.Kind = Failover
		c.Failover, err = redis.ParseFailoverURL(raw)
		if err == nil {
			c.Failover.SentinelUsername, c.Failover.SentinelPassword = sentinelUser, sentinelPass
		}
	case isCluster:
		c.Kind = Cluster
		c.Cluster, err = redis.ParseClusterURL(raw)
	default:
		c.Kind = Standalone
		c.Single, err = redis.ParseURL(raw)
	}
	if err != nil {
		// go-redis errors name the option; RedactError drops any secret value.
		return Config{}, fmt.Errorf("%w: %w", transports.ErrInvalidURL, transports.RedactError(err, raw))
	}
	return c, nil
}

// NewClient opens the client the URL asked for.
func (c Config) NewClient() redis.UniversalClient {
	switch c.Kind {
	case Cluster:
		return redis.NewClusterClient(c.Cluster)
	case Failover:
		return redis.NewFailoverClient(c.Failover)
	default:
		return redis.NewClient(c.Single)
	}
}

// MarkRefused wraps err with transports.ErrAccessRefused when the server
// refused the URL's credentials (WRONGPASS, NOAUTH), with
// transports.ErrInvalidConfig when the URL's database number is beyond the
// server's (a fix of the URL, not a wait), and returns any other error as
// it is.
func MarkRefused(err error) error {
	switch {
	case IsServerError(err, "WRONGPASS", "NOAUTH"):
		return fmt.Errorf("%w: %w", transports.ErrAccessRefused, err)
	case IsServerError(err, "ERR") && strings.Contains(err.Error(), "DB index is out of range"):
		return fmt.Errorf("%w: %w", transports.ErrInvalidConfig, err)
	}
	return err
}

// IsServerError reports whether err is an error reply of the server whose
// code (its first word: NOGROUP, WRONGTYPE, ...) is one of codes.
func IsServerError(err error, codes ...string) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return false
	}
	code, _, _ := strings.Cut(re.Error(), " ")
	for _, c := range codes {
		if code == c {
			return true
		}
	}
	return false
}
