package transports_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/busline/busline/transports"
)

func TestCheckGroupName(t *testing.T) {
	for _, ok := range []string{"svc-work", "billing-eu-invoice", "a.b-c_d"} {
		if err := transports.CheckGroupName(ok); err != nil {
			t.Errorf("CheckGroupName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "work", "svc-work.dead", "svc-work.retry.1s", "bus.records.owners-x", "-svc", "svc-wo rk", "svc-work/x", strings.Repeat("a-", 120)} {
		if err := transports.CheckGroupName(bad); !errors.Is(err, transports.ErrNotFound) {
			t.Errorf("CheckGroupName(%q): %v, want ErrNotFound", bad, err)
		}
	}
}
