package dashboard

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/transports"
)

// tailPing is how often an idle tail stream gets a keep-alive comment.
const tailPing = 15 * time.Second

// tailView is one tailed event for the page.
type tailView struct {
	ID        string     `json:"id"`
	Position  string     `json:"position"`
	At        *time.Time `json:"at"`
	FiredAt   string     `json:"fired_at"`
	Source    string     `json:"source"`
	Payload   string     `json:"payload"`
	JSON      bool       `json:"payload_json"`
	Truncated bool       `json:"truncated,omitempty"`
	Error     string     `json:"error,omitempty"`
}

// tail follows ?event=NAME live as a stream of server-sent events: "ready"
// once it follows, "event" for each event, "failed" when the tail ends on
// an error. It joins no consumer group.
func (h *handler) tail(w http.ResponseWriter, r *http.Request) {
	if h.o.Tailer == nil {
		writeError(w, http.StatusNotImplemented, "this transport cannot tail events")
		return
	}
	event := r.URL.Query().Get("event")
	var api, name string
	if i := strings.LastIndexByte(event, '.'); i >= 0 {
		api, name = event[:i], event[i+1:]
	}
	if err := bus.ValidateEventName(api, name); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s := startSSE(w, r)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- h.o.Tailer.Tail(ctx, event, transports.TailOptions{
			Ready: func() { _ = s.send("ready", map[string]string{"event": event}) },
		}, func(ev transports.TailedEvent) error {
			return s.send("event", toTailView(ev))
		})
	}()
	t := time.NewTicker(tailPing)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				_ = s.send("failed", map[string]string{"error": err.Error()})
			}
			return
		case <-t.C:
			if s.ping() != nil {
				cancel()
				<-done
				return
			}
		}
	}
}

func toTailView(ev transports.TailedEvent) tailView {
	v := tailView{Position: ev.Position, At: timePtr(ev.At)}
	if m := ev.Message; m != nil {
		v.ID = m.UUID
		v.FiredAt = m.Metadata.Get(bus.MetaTime)
		v.Source = m.Metadata.Get(bus.MetaSource)
		v.Payload, v.JSON, v.Truncated = pretty(m.Payload)
	}
	if ev.Err != nil {
		v.Error = ev.Err.Error()
	}
	return v
}
