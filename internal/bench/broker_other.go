//go:build !linux

package bench

import (
	"errors"
	"time"
)

// brokerCPUTime needs Linux's /proc: elsewhere a BrokerPID is refused.
func brokerCPUTime(int) (time.Duration, error) {
	return 0, errors.New("reading another process's CPU time needs Linux's /proc")
}
