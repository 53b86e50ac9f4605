package faults

import (
	"context"
	"testing"
	"time"

	"github.com/busline/busline/bus"
)

// TestLagBeyondRetention shows the limit of "every event whose Fire
// returned nil is handled": streams are trimmed to maxlen entries whether
// or not a group has read them (retention, item 11 of the semantics in docs/transports.md), so a group that
// falls more than maxlen events behind loses the oldest ones. The newest
// maxlen events are kept and handled. Here maxlen is 100 and 1000 events
// are fired while the only listener is stopped.
func TestLagBeyondRetention(t *testing.T) {
	for _, kind := range []string{"memory", "redis"} {
		t.Run(kind, func(t *testing.T) {
			checkLeaks(t)
			const maxLen, fired = 100, 1000
			var tg *target
			if kind == "redis" {
				tg = redisTarget(t, "", "maxlen=100")
			} else {
				tg = memoryTarget(t)
				tg.url += "?maxlen=100"
			}
			rec := newRecorder(0)
			listen := func() *bus.Bus {
				b := newBus(t, bus.Config{Service: tg.service, Process: "p1", Transport: tg.url})
				if err := bus.Listen(b, ticked, listenerName, rec.handle); err != nil {
					t.Fatal(err)
				}
				if err := b.Start(context.Background()); err != nil {
					t.Fatal(err)
				}
				return b
			}
			pub := newBus(t, bus.Config{Service: tg.service, Transport: tg.url})
			_ = listen().Close() // the group exists, its only process is stopped
			var ids []string
			for n := range fired {
				id, err := bus.Fire(context.Background(), pub, ticked, tick{N: n})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, id)
			}
			listen()
			newest := ids[len(ids)-maxLen:]
			waitFor(t, 30*time.Second, "the newest maxlen events to be handled", func() bool { return rec.missing(newest) == 0 })
			lost := rec.missing(ids)
			t.Logf("%s, maxlen %d: fired %d while the listener was down, handled %d, lost to trimming %d (the newest %d all handled)",
				kind, maxLen, fired, fired-lost, lost, maxLen)
			if lost == 0 {
				t.Errorf("nothing was trimmed: the test did not reach the retention limit")
			}
		})
	}
}
