package transports

import "time"

// GroupDoc is the JSON document of one consumer group, the same in
// `busline inspect --json` and in the dashboard's /api/overview. Counts
// and ages the broker does not report are null, as is OldestPendingMS
// when nothing is pending.
type GroupDoc struct {
	Group           string `json:"group"`
	Event           string `json:"event"`
	Queue           string `json:"queue,omitempty"`
	Consumers       int    `json:"consumers"`
	Pending         *int64 `json:"pending"`
	Lag             *int64 `json:"lag"`
	OldestPendingMS *int64 `json:"oldest_pending_ms"`
	DeadLetters     int64  `json:"dead_letters"`
	// Stale is the number of members idle for longer than the viewer's
	// limit; nil (and absent from the JSON) when the viewer judges none.
	Stale   *int          `json:"stale,omitempty"`
	Members []ConsumerDoc `json:"members"`
}

// ConsumerDoc is the JSON document of one consumer of a group. A live
// consumer is never stale.
type ConsumerDoc struct {
	Name    string `json:"name"`
	Pending int64  `json:"pending"`
	// IdleMS is the time since it last read or acknowledged; null when
	// the broker does not say (a live consumer that has not read yet).
	IdleMS *int64 `json:"idle_ms"`
	// Live is whether the transport knows it holds an open subscription.
	Live bool `json:"live"`
	// Stale is set when the viewer judges staleness: whether the consumer
	// has been idle for at least its limit. Nil, it is absent from the JSON.
	Stale *bool `json:"stale,omitempty"`
}

// NewGroupDoc returns the document of g. With staleAfter above zero it
// also says which members have been idle for at least staleAfter, and
// how many; with zero it judges none.
func NewGroupDoc(g GroupInfo, staleAfter time.Duration) GroupDoc {
	d := GroupDoc{
		Group: g.Group, Event: g.Event, Queue: g.Queue, Consumers: g.Consumers,
		Pending: knownCount(g.Pending), Lag: knownCount(g.Lag), DeadLetters: g.DeadLetters,
		Members: make([]ConsumerDoc, 0, len(g.Members)),
	}
	if g.Pending != 0 && g.OldestPending != Unknown {
		ms := g.OldestPending.Milliseconds()
		d.OldestPendingMS = &ms
	}
	stale := 0
	for _, m := range g.Members {
		c := ConsumerDoc{Name: m.Name, Pending: m.Pending, Live: m.Live}
		if m.Idle != Unknown {
			ms := m.Idle.Milliseconds()
			c.IdleMS = &ms
		}
		if staleAfter > 0 {
			s := !m.Live && m.Idle >= staleAfter
			c.Stale = &s
			if s {
				stale++
			}
		}
		d.Members = append(d.Members, c)
	}
	if staleAfter > 0 {
		d.Stale = &stale
	}
	return d
}

// knownCount is a count for JSON: nil when Unknown.
func knownCount(n int64) *int64 {
	if n == Unknown {
		return nil
	}
	return &n
}
