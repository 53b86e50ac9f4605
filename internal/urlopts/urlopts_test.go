package urlopts

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/busline/busline/transports"
)

func TestReadAndRemove(t *testing.T) {
	v, _ := url.ParseQuery("n=5&n=7&d=2s&b=true&maxlen.x.a=3&maxlen.x.b=4&other=x")
	q := Query{Transport: "test", Values: v}
	var n int
	var d time.Duration
	var b bool
	var caps map[string]int64
	err := All(
		func() error { return q.Int("n", 0, Into(&n)) },
		func() error { return q.Duration("d", Positive, IntoDuration(&d)) },
		func() error { return q.Bool("b", func(x bool) { b = x }) },
		func() error { return q.MaxLenByEvent(&caps) },
		func() error { return q.Int("absent", 0, func(int64) { t.Error("set called for an absent option") }) },
	)
	if err != nil {
		t.Fatal(err)
	}
	if n != 7 || d != 2*time.Second || !b || caps["x.a"] != 3 || caps["x.b"] != 4 || len(caps) != 2 {
		t.Fatalf("read n=%d d=%s b=%v caps=%v", n, d, b, caps)
	}
	if got := q.Values.Encode(); got != "other=x" {
		t.Fatalf("left %q, want only the unread option", got)
	}
}

func TestBadValues(t *testing.T) {
	for _, tc := range []struct {
		query string
		read  func(Query) error
		want  string
	}{
		{"n=x", func(q Query) error { return q.Int("n", 0, Into(new(int64))) }, `test option n="x"`},
		{"n=-2", func(q Query) error { return q.Int("n", -1, Into(new(int64))) }, "must be at least -1"},
		{"d=0s", func(q Query) error { return q.Duration("d", Positive, IntoDuration(new(time.Duration))) }, "must be positive"},
		{"d=-1s", func(q Query) error { return q.Duration("d", NonNegative, IntoDuration(new(time.Duration))) }, "must not be negative"},
		{"b=maybe", func(q Query) error { return q.Bool("b", func(bool) {}) }, `test option b="maybe"`},
		{"maxlen.x.e=-1", func(q Query) error { return q.MaxLenByEvent(new(map[string]int64)) }, "must be at least 0"},
		{"maxlen.Bad-Event=5", func(q Query) error { return q.MaxLenByEvent(new(map[string]int64)) }, "no event is named \"Bad-Event\""},
	} {
		v, _ := url.ParseQuery(tc.query)
		err := tc.read(Query{Transport: "test", Values: v})
		if !errors.Is(err, transports.ErrInvalidURL) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want ErrInvalidURL saying %q", tc.query, err, tc.want)
		}
	}
	v, _ := url.ParseQuery("d=-1s&z=0s")
	q := Query{Transport: "test", Values: v}
	var d, z time.Duration
	if err := All(
		func() error { return q.Duration("d", Any, IntoDuration(&d)) },
		func() error { return q.Duration("z", NonNegative, IntoDuration(&z)) },
	); err != nil || d != -time.Second || z != 0 {
		t.Fatalf("Any and NonNegative: d=%s z=%s err=%v", d, z, err)
	}
}
