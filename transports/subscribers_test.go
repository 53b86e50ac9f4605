package transports_test

import (
	"errors"
	"testing"

	"github.com/busline/busline/transports"
)

type closer struct {
	closed int
	err    error
}

func (c *closer) Close() error { c.closed++; return c.err }

func TestSubscribers(t *testing.T) {
	var set transports.Subscribers[*closer]
	a, b, gone := &closer{}, &closer{err: errors.New("b failed")}, &closer{}
	for _, c := range []*closer{a, b, gone} {
		if err := set.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	set.Remove(gone)
	first, err := set.CloseAll()
	if !first || err == nil || err.Error() != "b failed" {
		t.Errorf("CloseAll = %v, %v; want first and b's error", first, err)
	}
	if a.closed != 1 || b.closed != 1 || gone.closed != 0 {
		t.Errorf("closed a=%d b=%d removed=%d, want 1 1 0", a.closed, b.closed, gone.closed)
	}
	if first, err := set.CloseAll(); first || err != nil || a.closed != 1 {
		t.Errorf("second CloseAll = %v, %v (a closed %d times)", first, err, a.closed)
	}
	if !set.Closed() || !errors.Is(set.Add(&closer{}), transports.ErrClosed) {
		t.Error("a closed set still takes subscribers")
	}
}
