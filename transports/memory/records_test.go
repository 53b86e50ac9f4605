package memory_test

import (
	"testing"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/memory"
	"github.com/busline/busline/transports/transporttest"
)

func TestRecordStore(t *testing.T) {
	broker := memory.NewBroker(0)
	transporttest.RunRecordStore(t, func(t *testing.T) transports.RecordStore {
		tr := memory.New(broker)
		t.Cleanup(func() { _ = tr.Close() })
		return tr
	})
}
