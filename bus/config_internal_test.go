package bus

import (
	"testing"
	"time"
)

// A listener's own retry policy overrides the service's field by field:
// what it leaves zero comes from Config.Listener.Retry, then the defaults.
func TestListenerRetryMergesWithService(t *testing.T) {
	redeliver := func(int) time.Duration { return time.Minute }
	service := ListenerOptions{Retry: RetryPolicy{Tries: 1, RedeliveryDelay: redeliver}}

	own := ListenerOptions{}
	WithRetry(RetryPolicy{InitialInterval: time.Millisecond})(&own)
	got := own.withDefaults(service).Retry
	if got.Tries != 1 || got.InitialInterval != time.Millisecond || got.RedeliveryDelay == nil || got.RedeliveryDelay(1) != time.Minute {
		t.Fatalf("merged policy %+v: want Tries 1 and the service's RedeliveryDelay, InitialInterval 1ms", got)
	}
	if got.MaxInterval != 2*time.Second || got.Multiplier != 2 {
		t.Fatalf("merged policy %+v: want the defaults for the fields neither set", got)
	}

	// A listener that sets Tries wins over the service's.
	own = ListenerOptions{}
	WithRetry(RetryPolicy{Tries: 5})(&own)
	if got := own.withDefaults(service).Retry; got.Tries != 5 || got.RedeliveryDelay(1) != time.Minute {
		t.Fatalf("merged policy %+v", got)
	}

	// Values WithDefaults would replace count as unset: the service's win.
	service = ListenerOptions{Retry: RetryPolicy{Tries: 1, Multiplier: 1.5, Jitter: -1}}
	own = ListenerOptions{}
	WithRetry(RetryPolicy{Tries: -1, Multiplier: 0.5, Jitter: 1})(&own)
	if got := own.withDefaults(service).Retry; got.Tries != 1 || got.Multiplier != 1.5 || got.Jitter != -1 {
		t.Fatalf("merged policy %+v: want the service's Tries 1, Multiplier 1.5, Jitter -1", got)
	}
	service = ListenerOptions{Retry: RetryPolicy{Tries: 1, RedeliveryDelay: redeliver}}

	// No policy of its own: the service's, with the defaults.
	if got := (ListenerOptions{}).withDefaults(service).Retry; got.Tries != 1 || got.InitialInterval != 100*time.Millisecond {
		t.Fatalf("service policy %+v", got)
	}
}
