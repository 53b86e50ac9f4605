package nats

import (
	"context"
	"testing"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/transporttest"
)

// TestRecordStore runs the shared RecordStore checks on the record bucket.
func TestRecordStore(t *testing.T) {
	url := testURL(t, "", "")
	transporttest.RunRecordStore(t, func(t *testing.T) transports.RecordStore {
		tr, err := transports.Open(context.Background(), url, transports.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tr.Close() })
		return tr.(*Transport)
	})
}
