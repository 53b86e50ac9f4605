package amqp

import (
	"context"
	"net/url"
	"testing"

	"github.com/busline/busline/transports"
	"github.com/busline/busline/transports/transporttest"
)

func TestRecordStore(t *testing.T) {
	raw := testURL(t, "", "")
	transporttest.RunRecordStore(t, func(t *testing.T) transports.RecordStore {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := Open(context.Background(), u, transports.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tr.Close() })
		return tr
	})
}
