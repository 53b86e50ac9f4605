package dashboard_test

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/busline/busline/dashboard"
	"github.com/busline/busline/transports"
)

// TestMetricsParseWithOddNames checks /metrics with the names a broker may
// hold beside the bus's own (any bytes in a Redis key): the exposition
// parses as Prometheus parses it, with one sample per series.
func TestMetricsParseWithOddNames(t *testing.T) {
	odd := []string{"a\xff\xfe.b", "a\xfe\xff.b", `q"uo\te` + "\nnl", "<script>alert(1)</script>"}
	res := &transports.Inspection{}
	for _, e := range odd {
		res.Streams = append(res.Streams, transports.StreamInfo{Event: e, Length: 1, LastEntryAt: time.Unix(1, 0)})
		res.Groups = append(res.Groups, transports.GroupInfo{Group: e, Event: e, Consumers: 1, Lag: 1,
			Members: []transports.ConsumerInfo{{Name: e, Pending: 1, Idle: time.Second}}})
	}
	srv := httptest.NewServer(dashboard.Handler(dashboard.Options{Inspector: &fixed{res: res}, Refresh: time.Nanosecond}))
	defer srv.Close()
	text := get(t, srv.URL+"/metrics")
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, text)
	}
	for name, f := range fams {
		seen := map[string]bool{}
		for _, m := range f.Metric {
			key := m.String()
			if seen[key] {
				t.Errorf("%s: duplicate series %s", name, key)
			}
			seen[key] = true
		}
	}
	// The two names that differ only in their invalid bytes are one series.
	if n := len(fams["busline_stream_length"].GetMetric()); n != 3 {
		t.Errorf("busline_stream_length has %d series, want 3:\n%s", n, text)
	}
	if !strings.Contains(text, `busline_group_lag{group="q\"uo\\te\nnl",event="q\"uo\\te\nnl"} 1`) {
		t.Errorf("escaped labels missing:\n%s", text)
	}
}
