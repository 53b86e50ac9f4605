package dashboard

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/busline/busline/transports"
)

// Metric names of /metrics. Every gauge is per event or per group; a
// figure the broker does not report (transports.Unknown) is left out
// rather than exported as a number.
const (
	metricUp            = "busline_broker_up"
	metricInspectTime   = "busline_broker_inspect_timestamp_seconds"
	metricStreamLength  = "busline_stream_length"
	metricStreamLast    = "busline_stream_last_event_timestamp_seconds"
	metricGroupLag      = "busline_group_lag"
	metricGroupPending  = "busline_group_pending"
	metricGroupOldest   = "busline_group_oldest_pending_seconds"
	metricGroupConsumer = "busline_group_consumers"
	metricGroupDead     = "busline_group_dead_letters"
	metricConsumerPend  = "busline_consumer_pending"
	metricConsumerIdle  = "busline_consumer_idle_seconds"
	metricConsumerLive  = "busline_consumer_live"
	metricScheduled     = "busline_event_scheduled"
	metricNextDue       = "busline_event_next_due_timestamp_seconds"
)

// metrics serves the broker's figures in the Prometheus text exposition
// format (version 0.0.4).
func (h *handler) metrics(w http.ResponseWriter, r *http.Request) {
	ov := h.poll.get(r.Context())
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	bw := bufio.NewWriter(w)
	writeMetrics(bw, ov)
	_ = bw.Flush()
}

// promWriter writes metric families: HELP and TYPE once per family, then samples.
type promWriter struct {
	w    *bufio.Writer
	seen map[string]bool
	// series are the series written, by name and labels: a second sample
	// of one (two broker names that differ only in bytes that are not
	// UTF-8) is left out, as Prometheus rejects a scrape with duplicates.
	series map[string]bool
}

func (p *promWriter) gauge(name, help string, value float64, labels ...string) {
	if !p.seen[name] {
		p.seen[name] = true
		fmt.Fprintf(p.w, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
	}
	var series strings.Builder
	series.WriteString(name)
	if len(labels) > 0 {
		series.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				series.WriteByte(',')
			}
			series.WriteString(labels[i])
			series.WriteString(`="`)
			series.WriteString(escapeLabel(labels[i+1]))
			series.WriteByte('"')
		}
		series.WriteByte('}')
	}
	if p.series[series.String()] {
		return
	}
	p.series[series.String()] = true
	p.w.WriteString(series.String())
	p.w.WriteByte(' ')
	p.w.WriteString(strconv.FormatFloat(value, 'g', -1, 64))
	p.w.WriteByte('\n')
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// escapeLabel renders a label value of the text format: UTF-8 (a broker
// key may hold any bytes; one that is not UTF-8 would fail the whole
// scrape), with backslash, double quote and newline escaped.
func escapeLabel(s string) string {
	return labelEscaper.Replace(strings.ToValidUTF8(s, "\uFFFD"))
}

func seconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// writeMetrics writes the gauges of ov. The per-event and per-group
// gauges are those of the last successful inspection; busline_broker_up
// says whether the latest one succeeded.
func writeMetrics(w *bufio.Writer, ov *overview) {
	p := &promWriter{w: w, seen: map[string]bool{}, series: map[string]bool{}}
	up := 0.0
	if ov.OK {
		up = 1
	}
	p.gauge(metricUp, "1 when the last inspection of the broker succeeded, else 0.", up)
	res := ov.inspection
	if res == nil {
		return
	}
	at := ov.At
	if ov.LastOK != nil {
		at = *ov.LastOK
	}
	p.gauge(metricInspectTime, "When the figures below were read from the broker (Unix time).", seconds(at))
	for _, s := range res.Streams {
		p.gauge(metricStreamLength, "Events retained in the stream of an event.", float64(s.Length), "event", s.Event)
	}
	for _, s := range res.Streams {
		if !s.LastEntryAt.IsZero() {
			p.gauge(metricStreamLast, "When the newest retained event was added (Unix time).", seconds(s.LastEntryAt), "event", s.Event)
		}
	}
	groups := func(name, help string, value func(transports.GroupInfo) (float64, bool)) {
		for _, g := range res.Groups {
			if v, ok := value(g); ok {
				p.gauge(name, help, v, "group", g.Group, "event", g.Event)
			}
		}
	}
	known := func(n int64) (float64, bool) { return float64(n), n != transports.Unknown }
	groups(metricGroupLag, "Events not yet delivered to the consumer group.", func(g transports.GroupInfo) (float64, bool) { return known(g.Lag) })
	groups(metricGroupPending, "Events delivered to the group and not acknowledged.", func(g transports.GroupInfo) (float64, bool) { return known(g.Pending) })
	groups(metricGroupOldest, "Age of the group's oldest unacknowledged event (0 when none).", func(g transports.GroupInfo) (float64, bool) {
		if g.Pending == 0 {
			return 0, true
		}
		return g.OldestPending.Seconds(), g.OldestPending != transports.Unknown && g.Pending != transports.Unknown
	})
	groups(metricGroupConsumer, "Consumers of the group.", func(g transports.GroupInfo) (float64, bool) { return float64(g.Consumers), true })
	groups(metricGroupDead, "Events in the group's dead-letter destination.", func(g transports.GroupInfo) (float64, bool) { return float64(g.DeadLetters), true })
	members := func(name, help string, value func(transports.ConsumerInfo) (float64, bool)) {
		for _, g := range res.Groups {
			for _, m := range g.Members {
				if v, ok := value(m); ok {
					p.gauge(name, help, v, "group", g.Group, "event", g.Event, "consumer", m.Name)
				}
			}
		}
	}
	for _, si := range ov.scheduled {
		p.gauge(metricScheduled, "Events fired with a delay that wait for their due time.", float64(si.Count), "event", si.Event)
	}
	for _, si := range ov.scheduled {
		if !si.NextDue.IsZero() {
			p.gauge(metricNextDue, "The earliest due time of an event's scheduled events (Unix time).", seconds(si.NextDue), "event", si.Event)
		}
	}
	members(metricConsumerPend, "Events a consumer holds unacknowledged.", func(m transports.ConsumerInfo) (float64, bool) { return known(m.Pending) })
	members(metricConsumerIdle, "Time since a consumer last read or acknowledged.", func(m transports.ConsumerInfo) (float64, bool) {
		return m.Idle.Seconds(), m.Idle != transports.Unknown
	})
	members(metricConsumerLive, "1 when the consumer holds an open subscription now (memory, Redis), else 0.", func(m transports.ConsumerInfo) (float64, bool) {
		if m.Live {
			return 1, true
		}
		return 0, true
	})
}
