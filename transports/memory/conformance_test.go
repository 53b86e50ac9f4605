package memory_test

import (
	"crypto/rand"
	"testing"

	"github.com/busline/busline/transports/memory"
	"github.com/busline/busline/transports/transporttest"
)

func TestConformance(t *testing.T) {
	transporttest.Run(t, harness)
}

func TestDriverConformance(t *testing.T) {
	transporttest.RunDriver(t, harness)
}

var harness = transporttest.Harness{
	Name: "memory",
	URL: func(t testing.TB) string {
		name := "conformance-" + rand.Text()
		t.Cleanup(func() { memory.Forget(name) })
		return "memory://" + name
	},
	OwnPendingFirst: true,
	Replay:          true,
	Retention:       true,
}

func TestScheduleConformance(t *testing.T) {
	transporttest.RunSchedule(t, transporttest.Harness{
		Name: "memory",
		URL: func(t testing.TB) string {
			name := "schedule-" + rand.Text()
			t.Cleanup(func() { memory.Forget(name) })
			return "memory://" + name
		},
	}, transporttest.ScheduleCaps{Cancel: true, Counts: true})
}
